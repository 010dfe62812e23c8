/**
 * Fault matrix (issue 12): SIGKILL and SIGTERM at each stage of the agent's start-up, real
 * processes, all runs on the same socket paths: whatever a killed run leaves behind must not
 * block the next one, and a SIGTERM at any stage past the first is a clean exit (code 0, sockets
 * removed), because the handler is installed before start-up begins.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { FRONTEND, ORDERS, SHOP_POLICIES, TD } from '../agent/stand.js';
import { MeshidProcess, type LogLine } from '../helpers/meshid-process.js';
import { startRogueCa } from '../helpers/rogue-ca.js';
import { tempDir } from '../helpers/tmp.js';
import { agentArgs, untilReady } from './support.js';

/** A port nothing listens on: the CA is "down" for the runs that must stay in the waiting stage. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

type Stage = 'spawned' | 'sds-bound' | 'waiting-for-ca' | 'ready';

test('SIGKILL and SIGTERM at every start-up stage: no stale socket blocks the next start; SIGTERM exits 0 and removes the sockets', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const policyDir = path.join(dir, 'policies');
  fs.mkdirSync(policyDir);
  for (const [name, yaml] of Object.entries(SHOP_POLICIES)) fs.writeFileSync(path.join(policyDir, name), yaml);
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  const down = `127.0.0.1:${await closedPort()}`;
  const sdsSocket = path.join(dir, 'run', 'sds.sock');
  const authzSocket = path.join(dir, 'run', 'authz.sock');
  const sockets = () => [sdsSocket, authzSocket].filter((p) => fs.existsSync(p));

  const run = async (stage: Stage, signal: 'SIGKILL' | 'SIGTERM') => {
    const caAddress = stage === 'waiting-for-ca' ? down : ca.address;
    const agent = new MeshidProcess(agentArgs(dir, { caAddress, caBundle: ca.bundlePath, args: [`--authz-socket=${authzSocket}`, `--policy-dir=${policyDir}`] }));
    t.teardown(() => agent.stop());
    const at = (what: string, match: (l: LogLine) => boolean) => agent.waitFor(`${what} (${stage}, before ${signal})`, match);
    if (stage === 'sds-bound') await at('the SDS socket', (l) => l.msg === 'SDS server listening');
    if (stage === 'waiting-for-ca') {
      await at('agent started', (l) => l.msg === `agent started (pid ${agent.pid})`);
      await at('a failed CA attempt', (l) => l.msg === 'could not obtain an SVID from the CA; will retry');
    }
    if (stage === 'ready') {
      const started = await at('agent started', (l) => l.msg === `agent started (pid ${agent.pid})`);
      await untilReady(String(started.admin));
    }
    agent.signal(signal);
    const exit = await agent.exited;
    return { exit, left: sockets(), stderr: agent.stderr };
  };

  for (const stage of ['spawned', 'sds-bound', 'waiting-for-ca', 'ready'] as const) {
    const killed = await run(stage, 'SIGKILL');
    t.is(killed.exit.signal, 'SIGKILL', stage);
    t.log(`SIGKILL at ${stage}: left ${killed.left.map((p) => path.basename(p)).join(', ') || 'nothing'}`);
    // The next run starts on the same paths (a stale socket is replaced) and shuts down cleanly.
    const termed = await run(stage, 'SIGTERM');
    if (stage === 'spawned') {
      // Before node has run any of meshid's code, SIGTERM is the default action.
      t.true(termed.exit.code === 0 || termed.exit.signal === 'SIGTERM', `${stage}: ${JSON.stringify(termed.exit)}`);
    } else {
      t.deepEqual(termed.exit, { code: 0, signal: null }, `${stage}: ${termed.stderr}`);
      t.deepEqual(termed.left, [], `SIGTERM at ${stage} removes the sockets`);
    }
  }
  // After all that, a normal start on the same paths.
  const last = await run('ready', 'SIGTERM');
  t.deepEqual(last.exit, { code: 0, signal: null });
  t.deepEqual(fs.readdirSync(path.join(dir, 'run')).filter((f) => !f.endsWith('.sock')), [], 'no temporary socket directories left behind');
});

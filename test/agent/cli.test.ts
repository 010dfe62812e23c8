/**
 * `meshid agent` as users and Kubernetes run it: help, configuration from file, env and flags,
 * errors that name the key and its source, and the real processes (`meshid ca` and `meshid agent`)
 * serving SDS and stopping cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { agentOptions } from '../../src/cli/agent.js';
import { SdsClient } from '../helpers/sds-client.js';
import { cleanEnv, MeshidProcess, MESHID_MAIN } from '../helpers/meshid-process.js';
import { tempDir } from '../helpers/tmp.js';
import { chainOf, ORDERS, ORDERS_TOKEN, ordersCaProcess, TD } from './stand.js';

const MAIN = MESHID_MAIN;
const BASE_ENV = cleanEnv();

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs meshid to completion without blocking the event loop, so the tests of this file overlap. */
function meshid(args: readonly string[], env: Record<string, string> = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...BASE_ENV, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const NO_STACK = /\n\s+at /;

test('meshid agent --help lists every flag', async (t) => {
  const r = await meshid(['agent', '--help']);
  t.is(r.status, 0, r.stderr);
  for (const spec of Object.values(agentOptions)) t.true(r.stdout.includes(`--${spec.flag}`), `--${spec.flag}`);
  for (const flag of ['--config', '--print-config', '--help']) t.true(r.stdout.includes(flag), flag);
  t.regex(r.stdout, /--ca-address HOST:PORT .*required; env MESHID_CA_ADDRESS/);
});

test('--print-config shows file, env and flag values with their sources; the token file path, never the token', async (t) => {
  const dir = tempDir(t);
  const configFile = path.join(dir, 'agent.yaml');
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, `${ORDERS_TOKEN}\n`);
  fs.writeFileSync(configFile, ['ca-address: ca.meshid-system.svc:15012', `token-file: ${tokenFile}`, 'renew-fraction: 0.3', 'log-level: debug', 'svid-ttl: 1h'].join('\n'));
  const r = await meshid(['agent', '--print-config', '--config', configFile, '--log-level', 'warn', '--ca-bundle', '/etc/meshid/ca.pem'], {
    MESHID_SVID_TTL: '10m',
    MESHID_SDS_SOCKET: '/run/meshid/sds.sock',
  });
  t.is(r.status, 0, r.stderr);
  const lines = new Map(r.stdout.trim().split('\n').map((l) => [l.split(':')[0]!, l] as const));
  t.is(lines.size, Object.keys(agentOptions).length, 'one line per option');
  t.is(lines.get('ca-address'), `ca-address: ca.meshid-system.svc:15012  # file ${configFile}`);
  t.is(lines.get('token-file'), `token-file: ${tokenFile}  # file ${configFile}`);
  t.is(lines.get('renew-fraction'), `renew-fraction: 0.3  # file ${configFile}`);
  t.is(lines.get('svid-ttl'), 'svid-ttl: 10m  # env MESHID_SVID_TTL', 'env overrides the file');
  t.is(lines.get('sds-socket'), 'sds-socket: /run/meshid/sds.sock  # env MESHID_SDS_SOCKET');
  t.is(lines.get('log-level'), 'log-level: warn  # flag --log-level', 'a flag overrides the file');
  t.is(lines.get('ca-bundle'), 'ca-bundle: /etc/meshid/ca.pem  # flag --ca-bundle');
  t.is(lines.get('renew-jitter'), 'renew-jitter: 0.1  # default');
  t.is(lines.get('sds-socket-mode'), 'sds-socket-mode: "0600"  # default');
  t.is(lines.get('spiffe-id'), 'spiffe-id: null  # unset');
  t.false(r.stdout.includes(ORDERS_TOKEN), 'the token itself is never shown');
  t.false(r.stdout.includes('[redacted]'), 'the agent has no secret option values, so nothing is redacted');
});

test('bad values exit 2 naming each key and its source, all at once, without a stack trace', async (t) => {
  const dir = tempDir(t);
  const configFile = path.join(dir, 'agent.yaml');
  fs.writeFileSync(configFile, 'renew-jitter: lots\nrenew-fractoin: 0.5\n');
  const r = await meshid(['agent', '--config', configFile, '--admin-listen', 'nowhere', '--ca-address', '127.0.0.1:1', '--ca-bundle', 'x', '--token-file', 'y'], {
    MESHID_RENEW_FRACTION: '2',
  });
  t.is(r.status, 2);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^meshid agent: 4 configuration problems:\n/);
  t.regex(r.stderr, new RegExp(`renew-jitter \\(file ${configFile}\\): expected a number, got "lots"`));
  t.regex(r.stderr, new RegExp(`renew-fractoin \\(file ${configFile}\\): unknown setting \\(did you mean renew-fraction\\?\\)`));
  t.regex(r.stderr, /renew-fraction \(env MESHID_RENEW_FRACTION\): must be at most 0\.9, got 2/);
  t.regex(r.stderr, /admin-listen \(flag --admin-listen\): expected HOST:PORT/);
  t.false(NO_STACK.test(r.stderr));

  const missing = await meshid(['agent', '--ca-address', '127.0.0.1:1', '--token-file', 'y', '--spiffe-id', ORDERS, '--trust-domain', TD]);
  t.is(missing.status, 2);
  t.regex(missing.stderr, /^meshid agent: ca-bundle: required \(flag --ca-bundle, env MESHID_CA_BUNDLE or the config file\)\n/);
});

test('a --ca-bundle file that does not exist: non-zero exit, one clear line, no stack trace, nothing left behind', async (t) => {
  const dir = tempDir(t);
  const bundle = path.join(dir, 'missing-ca.pem');
  const r = await meshid([
    'agent',
    '--ca-address=127.0.0.1:1',
    `--ca-bundle=${bundle}`,
    `--token-file=${path.join(dir, 'token')}`,
    `--spiffe-id=${ORDERS}`,
    `--trust-domain=${TD}`,
    `--sds-socket=${path.join(dir, 'sds.sock')}`,
    '--admin-listen=127.0.0.1:0',
  ]);
  t.not(r.status, 0);
  const [first, ...rest] = r.stderr.trimEnd().split('\n');
  t.is(first, `meshid agent: ca-bundle (flag --ca-bundle): cannot read ${bundle}: ENOENT`);
  t.deepEqual(rest, ['Run "meshid agent --help" for usage.']);
  t.is(r.stdout, '');
  t.false(fs.existsSync(path.join(dir, 'sds.sock')));
});

test('the real processes: meshid ca and meshid agent, /readyz 200, default over SDS, SIGTERM exits 0 and removes the sockets', async (t) => {
  const dir = tempDir(t, 'meshid-proc-');
  const { ca, agentCaArgs, policyDir } = await ordersCaProcess(t, dir, 'policies');
  const sdsSocket = path.join(dir, 'run', 'sds.sock');
  const authzSocket = path.join(dir, 'run', 'authz.sock');
  const agent = new MeshidProcess([
    'agent',
    ...agentCaArgs,
    `--sds-socket=${sdsSocket}`,
    `--authz-socket=${authzSocket}`,
    `--policy-dir=${policyDir}`,
    '--admin-listen=127.0.0.1:0',
  ]);
  t.teardown(() => agent.stop());
  const started = await agent.waitFor('agent started', (l) => l.msg === `agent started (pid ${agent.pid})`);
  const admin = String(started.admin);
  // Real processes on the real clock: poll readiness (the first SVID is one CA round trip away).
  const deadline = Date.now() + 10_000;
  let ready: Response;
  while ((ready = await fetch(`${admin}/readyz`)).status !== 200) {
    if (Date.now() > deadline) return t.fail(`not ready: ${await ready.text()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.deepEqual(await ready.json(), { ready: true, checks: { svid: true, sds: true, authz_policies: true }, pid: agent.pid });
  t.is((await fetch(`${admin}/healthz`)).status, 200);
  t.is(fs.statSync(sdsSocket).mode & 0o777, 0o600);

  const sds = new SdsClient({ socketPath: sdsSocket, node: { id: 'sidecar~10.0.0.9~orders~shop.svc.cluster.local', cluster: 'orders' } });
  t.teardown(() => sds.close());
  const fetched = await sds.fetch('default');
  const [leaf] = chainOf(fetched.secret.tlsCertificate!.certificateChain);
  t.deepEqual(leaf!.sans, [{ type: 'uri', value: ORDERS }]);
  t.is(fetched.version, leaf!.serial);
  sds.close();

  agent.signal('SIGTERM');
  t.is((await agent.exited).code, 0, agent.stderr);
  t.false(fs.existsSync(sdsSocket), 'the SDS socket is removed');
  t.false(fs.existsSync(authzSocket), 'the ext_authz socket is removed');
  t.truthy(agent.lines.find((l) => l.msg === 'SIGTERM: shutting down'));
  t.false(JSON.stringify(agent.lines).includes(ORDERS_TOKEN), 'the token is never logged');
  t.false(NO_STACK.test(agent.stderr));
  ca.signal('SIGTERM');
  t.is((await ca.exited).code, 0, ca.stderr);
});

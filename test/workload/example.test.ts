/**
 * The examples/workload-mtls server and client, each on its own agent's Workload API (orders
 * serves, frontend calls), in front of the real CA: a request loop over new connections keeps
 * running while both SVIDs rotate at least three times, driven by the fake clock (the agents
 * renew at 10 % of a one-minute lifetime, so the clock never runs far ahead of the real time that
 * OpenSSL checks certificate dates against). Zero failed requests, and the peer checks hold.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { agentOptions, startAgent } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { WorkloadApiClient } from '../../src/workload/client.js';
import { get } from '../../examples/workload-mtls/client.js';
import { startExampleServer } from '../../examples/workload-mtls/server.js';
import { FRONTEND, FRONTEND_TOKEN, ORDERS, Stand, SVID_TTL_MS, TD } from '../agent/stand.js';
import { captureLogs } from '../helpers/logs.js';
import { eventually } from '../sds/support.js';

test('the example mTLS server and client keep talking through three rotations of both SVIDs with no failed request', async (t) => {
  t.timeout(90_000);
  const stand = await Stand.start(t, { renewFraction: 0.1, agentArgs: (dir) => [`--workload-api-socket=${path.join(dir, 'orders.sock')}`] });
  const tokenFile = path.join(stand.dir, 'frontend.token');
  fs.writeFileSync(tokenFile, FRONTEND_TOKEN);
  const frontendArgv = [
    `--ca-address=127.0.0.1:${stand.caPort}`,
    `--ca-bundle=${stand.ca!.bundlePath}`,
    `--token-file=${tokenFile}`,
    `--trust-domain=${TD}`,
    `--spiffe-id=${FRONTEND}`,
    `--svid-ttl=${SVID_TTL_MS}ms`,
    '--renew-fraction=0.1',
    '--renew-jitter=0',
    `--sds-socket=${path.join(stand.dir, 'frontend-sds.sock')}`,
    '--admin-listen=127.0.0.1:0',
    `--workload-api-socket=${path.join(stand.dir, 'frontend.sock')}`,
  ];
  const frontend = await startAgent(loadConfig(agentOptions, { argv: frontendArgv, fileAndEnv: false }).config, { logger: captureLogs().logger, clock: stand.clock });
  t.teardown(() => frontend.close());

  const ordersWorkload = new WorkloadApiClient({ socketPath: stand.agent.workloadApi!.socketPath, clock: stand.clock });
  const frontendWorkload = new WorkloadApiClient({ socketPath: frontend.workloadApi!.socketPath, clock: stand.clock });
  t.teardown(() => {
    ordersWorkload.close();
    frontendWorkload.close();
  });
  const serials = { orders: new Set<string>(), frontend: new Set<string>() };
  ordersWorkload.on('update', (c) => serials.orders.add(c.certChainPem));
  frontendWorkload.on('update', (c) => serials.frontend.add(c.certChainPem));
  await Promise.all([ordersWorkload.ready(), frontendWorkload.ready()]);
  const server = await startExampleServer(ordersWorkload, { spiffeId: FRONTEND });
  t.teardown(() => server.close());
  const url = `https://127.0.0.1:${server.port}/`;

  let ok = 0;
  const failures: string[] = [];
  const serverSerials = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await get(frontendWorkload, url, { spiffeId: ORDERS });
        if (r.status === 200 && r.body === `hello ${FRONTEND}, this is ${ORDERS}\n`) ok++;
        else failures.push(`${r.status} ${r.body}`);
        serverSerials.add(r.serverSerial);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
  })();

  const managers = [stand.agent.manager, frontend.manager];
  while (serials.orders.size < 4 || serials.frontend.size < 4) {
    await eventually(() => managers.every((m) => !m.status().requestInFlight), 10_000, 'CA requests to finish');
    const before = ok;
    await eventually(() => ok >= before + 3, 10_000, 'requests between rotations');
    const next = Math.min(...managers.map((m) => m.status().nextAttemptAt ?? Infinity));
    await stand.clock.advance(Math.max(0, next - stand.clock.now()));
    await eventually(() => managers.every((m) => !m.status().requestInFlight), 10_000, 'the renewal to finish');
  }
  const before = ok;
  await eventually(() => ok >= before + 3, 10_000, 'requests after the last rotation');
  running = false;
  await loop;

  t.deepEqual(failures, []);
  t.true(serials.orders.size >= 4 && serials.frontend.size >= 4, `rotations seen: orders ${serials.orders.size - 1}, frontend ${serials.frontend.size - 1}`);
  t.true(serverSerials.size >= 4, `the client saw ${serverSerials.size} server certificates`);
  t.true(ok > 12);

  // The peer checks are real: the client refuses a server that is not the one it expects, and
  // the server refuses a client it does not allow.
  await t.throwsAsync(get(frontendWorkload, url, { spiffeId: `spiffe://${TD}/ns/shop/sa/other` }), { message: /peer spiffe:\/\/example\.org\/ns\/shop\/sa\/orders is not authorized/ });
  await t.throwsAsync(get(ordersWorkload, url, { spiffeId: ORDERS }), { message: /socket hang up|ECONNRESET/ });
});

import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { startAuthzService } from '../../src/authz/server.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { tempDir } from '../helpers/tmp.js';
import { capturingLogger } from '../authz/helpers/authz-client.js';
import { fixture, runCli } from '../authz/helpers/cli.js';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

test('authz ask: a real Check to a running ext_authz server, over the socket and TCP; a default deny names the nearest rule', async (t) => {
  const dir = tempDir(t);
  const socket = path.join(tempDir(t, 'meshid-sock-'), 'authz.sock');
  const service = await startAuthzService(
    { socket, listen: { host: '127.0.0.1', port: 0 }, policyDir: fixture('shop'), reloadDebounceMs: 50, resyncMs: 0 },
    { logger: capturingLogger().logger, clock: new FakeClock() },
  );
  t.teardown(() => service.close());

  const allowed = await runCli(['authz', 'ask', '--socket', socket, '--principal', FRONTEND, '--method', 'GET', '--path', '/api/v1/orders', '--header', 'x-tenant=acme']);
  t.is(allowed.code, 0, allowed.stderr);
  const a = JSON.parse(allowed.stdout) as Record<string, unknown>;
  t.like(a, { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-frontend', rule: 0, revision: service.revision() });

  const requestFile = path.join(dir, 'req.json');
  fs.writeFileSync(requestFile, JSON.stringify({ attributes: { source: { principal: FRONTEND }, request: { http: { method: 'GET', path: '/api/v2/orders', host: 'orders', headers: { 'x-tenant': 'acme' } } } } }));
  const denied = await runCli(['authz', 'ask', '--address', `127.0.0.1:${service.tcpPort}`, '--request', requestFile]);
  t.is(denied.code, 0, denied.stderr);
  const d = JSON.parse(denied.stdout) as Record<string, unknown>;
  t.like(d, { decision: 'deny', reason: 'no_allow_policy_matched', policy: null, grpcStatus: 7, httpStatus: 403 });
  t.deepEqual((d.nearest as string[])[0], 'shop/allow-frontend rule 0: path /api/v2/orders is not /api/v1/orders or /api/v1/orders/*');
  t.regex(String(d.body), /nearest ALLOW rule/);
});

test('authz ask: no agent listening, or neither --socket nor --address: exit 2 with a reason', async (t) => {
  const none = await runCli(['authz', 'ask', '--socket', path.join(tempDir(t), 'absent.sock'), '--timeout', '1s']);
  t.is(none.code, 2);
  t.regex(none.stderr, /meshid authz ask: unix:/);
  const neither = await runCli(['authz', 'ask']);
  t.is(neither.code, 2);
  t.regex(neither.stderr, /exactly one of --socket and --address/);
  const badHeader = await runCli(['authz', 'ask', '--address', '127.0.0.1:1', '--header', 'nope']);
  t.is(badHeader.code, 2);
  t.regex(badHeader.stderr, /--header nope: expected K=V/);
});

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Certificate } from '../../src/identity/certificate.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type AuthzService, type AuthzServiceConfig, startAuthzService } from '../../src/authz/server.js';
import type { ReloadOutcome } from '../../src/authz/policy-source.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { authzClient, type AuthzClient, capturingLogger, checkRequest, metadataOf } from './helpers/authz-client.js';
import { fixture } from './helpers/cli.js';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function copyFixture(t: ExecutionContext, name: string): string {
  const dir = path.join(tempDir(t), 'policies');
  fs.cpSync(fixture(name), dir, { recursive: true });
  return dir;
}

interface Started {
  service: AuthzService;
  unix: AuthzClient;
  tcp: AuthzClient;
  logs: ReturnType<typeof capturingLogger>['lines'];
  clock: FakeClock;
}

async function start(
  t: ExecutionContext,
  policyDir: string,
  config: Partial<AuthzServiceConfig> = {},
  deps: { trustRoots?: () => readonly Certificate[] | undefined; trustDomain?: string } = {},
): Promise<Started> {
  const { logger, lines } = capturingLogger();
  const clock = new FakeClock();
  const socket = path.join(tempDir(t, 'meshid-sock-'), 'authz.sock');
  const service = await startAuthzService(
    // resyncMs 0: reloads here come from file events only (the periodic re-read has its own test).
    { socket, listen: { host: '127.0.0.1', port: 0 }, policyDir, reloadDebounceMs: 50, resyncMs: 0, ...config },
    { logger, clock, ...deps },
  );
  const unix = authzClient(`unix:${socket}`);
  const tcp = authzClient(`127.0.0.1:${service.tcpPort}`);
  t.teardown(async () => {
    unix.close();
    tcp.close();
    await service.close();
  });
  return { service, unix, tcp, logs: lines, clock };
}

test('allow over the Unix socket: status OK, dynamic_metadata names decision, policy, rule and revision', async (t) => {
  const { service, unix } = await start(t, copyFixture(t, 'shop'));
  t.true(service.ready());
  t.regex(service.revision(), /^[0-9a-f]{12}$/);
  const r = await unix.check(checkRequest({ principal: FRONTEND }));
  t.is(r.status?.code ?? 0, 0);
  t.is(r.denied_response, undefined);
  const md = metadataOf(r);
  t.like(md, { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-frontend', rule: 0, revision: service.revision(), dry_run_decision: 'allow' });
  t.regex(md.decision_id as string, /^[0-9a-f-]{36}$/);
});

test('deny over TCP: PERMISSION_DENIED, 403 with a short body naming the reason, and metadata', async (t) => {
  const { tcp, service } = await start(t, copyFixture(t, 'shop'));
  const r = await tcp.check(checkRequest({ principal: FRONTEND, path: '/admin/users' }));
  t.is(r.status?.code, 7);
  t.is(r.status?.message, 'deny_policy_matched');
  t.is(r.denied_response?.status?.code, 'Forbidden');
  const md = metadataOf(r);
  t.like(md, { decision: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-admin', rule: 0, revision: service.revision() });
  t.is(r.denied_response?.body, `access denied: deny_policy_matched; policy shop/deny-admin rule 0; decision ${md.decision_id}\n`);
  const headers = Object.fromEntries((r.denied_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value]));
  t.deepEqual(headers, { 'content-type': 'text/plain', 'x-meshid-decision-id': md.decision_id });
  const defaultDeny = await tcp.check(checkRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/backend' }));
  t.is(defaultDeny.status?.code, 7);
  t.like(metadataOf(defaultDeny), { reason: 'no_allow_policy_matched', policy: undefined });
});

test('deny details can be turned off', async (t) => {
  const { unix } = await start(t, copyFixture(t, 'shop'), { denyDetails: false });
  const r = await unix.check(checkRequest({ principal: FRONTEND, path: '/admin' }));
  t.is(r.status?.code, 7);
  t.is(r.denied_response?.body, 'access denied\n');
  t.is(metadataOf(r).policy, 'shop/deny-admin', 'the access log still gets the policy');
});

test('a malformed CheckRequest is denied with a clear reason, and the RPC succeeds', async (t) => {
  const { unix, tcp, logs } = await start(t, copyFixture(t, 'shop'));
  const noHttp = await unix.check({ attributes: { source: { principal: FRONTEND } } });
  t.is(noHttp.status?.code, 7);
  t.like(metadataOf(noHttp), { reason: 'malformed_request' });
  const empty = await tcp.check({});
  t.like(metadataOf(empty), { decision: 'deny', reason: 'malformed_request' });
  // Bytes that are not a protobuf message: a length running past the end.
  const garbage = await tcp.checkRaw(Buffer.from([0x0a, 0x7f, 0x01]));
  t.is(garbage.status?.code, 7);
  t.like(metadataOf(garbage), { reason: 'malformed_request' });
  const line = logs().find((l) => l.reason === 'malformed_request' && typeof l.detail === 'string' && (l.detail as string).includes('cannot be decoded'));
  t.truthy(line, 'the decision log says why');
});

test('an invalid policy set at start: not ready, every check denied, until a valid set appears', async (t) => {
  const dir = copyFixture(t, 'invalid');
  const { service, unix, logs, clock } = await start(t, dir);
  t.false(service.ready());
  t.is(service.revision(), '');
  const r = await unix.check(checkRequest({ principal: FRONTEND }));
  t.is(r.status?.code, 7);
  t.like(metadataOf(r), { reason: 'no_valid_policy_set', revision: '' });
  t.truthy(logs().find((l) => l.level === 'error' && String(l.msg).includes('a.yaml:10 doc 1 (allow-frontend): spec.rules[0].from[0].source.principals[1]')));
  t.truthy(logs().find((l) => String(l.msg).includes('no valid policy set: every check is denied')));

  const loaded = new Promise<ReloadOutcome>((resolve) => service.policies.onReload((o) => o.status === 'loaded' && resolve(o)));
  fs.rmSync(path.join(dir, 'a.yaml'));
  fs.rmSync(path.join(dir, 'b.yaml'));
  fs.copyFileSync(fixture('shop', '20-allow.yml'), path.join(dir, 'allow.yaml'));
  await clock.waitForTimers(1); // the watcher saw the change and armed its debounce timer
  await clock.advance(50);
  const outcome = await loaded;
  t.true(service.ready());
  t.is(service.revision(), outcome.status === 'loaded' ? outcome.revision : 'x');
  const after = await unix.check(checkRequest({ principal: FRONTEND }));
  t.is(after.status?.code ?? 0, 0);
  t.like(metadataOf(after), { policy: 'shop/allow-frontend', revision: service.revision() });
});

test('peer certificates: verified against the trust bundle; one that fails verification denies', async (t) => {
  const root = makeRoot('cluster.local');
  const otherRoot = makeRoot('cluster.local', { commonName: 'someone else' });
  const good = makeLeaf(root, FRONTEND);
  const forged = makeLeaf(otherRoot, FRONTEND);
  const expired = makeLeaf(root, FRONTEND, { notBefore: new Date(Date.UTC(2025, 0, 1)), notAfter: new Date(Date.UTC(2025, 0, 2)) });
  let roots: readonly Certificate[] | undefined = [root.cert];
  const { unix, clock } = await start(t, copyFixture(t, 'shop'), {}, { trustRoots: () => roots, trustDomain: 'cluster.local' });
  clock.jump(Date.now() - clock.now()); // verification uses the injected clock: bring it to today

  const ok = await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(good.pem) }));
  t.is(ok.status?.code ?? 0, 0);
  t.like(metadataOf(ok), { policy: 'shop/allow-frontend' });
  for (const bad of [forged, expired]) {
    const r = await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(bad.pem) }));
    t.is(r.status?.code, 7);
    t.like(metadataOf(r), { reason: 'peer_certificate_invalid' });
  }
  const unreadable = await unix.check(checkRequest({ principal: FRONTEND, certificate: 'not%20a%20certificate' }));
  t.like(metadataOf(unreadable), { reason: 'peer_certificate_invalid' });
  // The bundle changes (the root is rotated out): the cached verification no longer counts.
  roots = [otherRoot.cert];
  const rotated = await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(good.pem) }));
  t.like(metadataOf(rotated), { reason: 'peer_certificate_invalid' });
  // Time passes beyond the certificate's expiry: the cached result is not reused.
  roots = [root.cert];
  t.is((await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(good.pem) }))).status?.code ?? 0, 0);
  clock.jump(25 * 3_600_000);
  const late = await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(good.pem) }));
  t.like(metadataOf(late), { reason: 'peer_certificate_invalid' });
});

test('a peer certificate whose SPIFFE ID is the bare trust domain denies (peer_certificate_invalid)', async (t) => {
  const root = makeRoot('cluster.local');
  const bare = makeLeaf(root, 'spiffe://cluster.local');
  const { unix, clock } = await start(t, copyFixture(t, 'shop'), {}, { trustRoots: () => [root.cert], trustDomain: 'cluster.local' });
  clock.jump(Date.now() - clock.now());
  const r = await unix.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(bare.pem) }));
  t.is(r.status?.code, 7);
  t.like(metadataOf(r), { reason: 'peer_certificate_invalid' });
});

test('decision log: one line per decision with id, principal, request, outcome, policy, rule, dry-run and latency; no query string', async (t) => {
  const { unix, logs } = await start(t, copyFixture(t, 'shop'));
  const r = await unix.check(checkRequest({ principal: FRONTEND, method: 'POST', path: '/api/v1/orders?token=secret', headers: { 'x-tenant': 'acme' } }));
  const md = metadataOf(r);
  const lines = logs().filter((l) => l.component === 'authz-decision');
  t.is(lines.length, 1);
  t.like(lines[0], {
    level: 'info',
    decision_id: md.decision_id,
    request_id: 'req-1',
    principal: FRONTEND,
    method: 'POST',
    host: 'orders.shop.svc.cluster.local',
    path: '/api/v1/orders',
    outcome: 'allow',
    reason: 'allow_policy_matched',
    policy: 'shop/allow-frontend',
    rule: 0,
    revision: md.revision,
    audit_policy: 'shop/audit-writes',
    dry_run_outcome: 'deny',
    dry_run_changed: true,
    dry_run_effective_policy: 'shop/deny-unknown-tenants',
    dry_run_effective_rule: 0,
  });
  t.true(typeof lines[0]!.latency_us === 'number');
  t.false(JSON.stringify(logs()).includes('secret'));
});

test('decision log sampling: 0 logs nothing but decisions a dry-run policy would change', async (t) => {
  const { unix, logs } = await start(t, copyFixture(t, 'shop'), { decisionLogSample: 0 });
  for (let i = 0; i < 5; i++) await unix.check(checkRequest({ principal: FRONTEND }));
  t.is(logs().filter((l) => l.component === 'authz-decision').length, 0);
  await unix.check(checkRequest({ principal: FRONTEND, headers: { 'x-tenant': 'acme' } }));
  const lines = logs().filter((l) => l.component === 'authz-decision');
  t.is(lines.length, 1);
  t.regex(String(lines[0]!.msg), /\(dry-run policies would deny\)$/);
});

test('a stale socket file is replaced; a regular file at the socket path is refused', async (t) => {
  const dir = tempDir(t, 'meshid-sock-');
  const policyDir = copyFixture(t, 'shop');
  const { logger } = capturingLogger();
  const socket = path.join(dir, 'authz.sock');
  // A process that exits without closing its listener leaves its socket file behind.
  spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.exit(0))", socket]);
  t.true(fs.lstatSync(socket).isSocket(), 'stale socket in place');
  const service = await startAuthzService({ socket, policyDir }, { logger, clock: new FakeClock() });
  const client = authzClient(`unix:${socket}`);
  const r = await client.check(checkRequest({ principal: FRONTEND }));
  t.like(metadataOf(r), { decision: 'allow' });
  client.close();
  await service.close();
  t.false(fs.existsSync(socket), 'close removes the socket');
  fs.writeFileSync(path.join(dir, 'file.sock'), 'not a socket');
  await t.throwsAsync(startAuthzService({ socket: path.join(dir, 'file.sock'), policyDir }, { logger, clock: new FakeClock() }), { message: /exists and is a regular file; refusing to replace it/ });
  t.is(fs.readFileSync(path.join(dir, 'file.sock'), 'utf8'), 'not a socket');
});

test('the Unix socket is created 0600 (or the mode asked for), never wider, and removed on close', async (t) => {
  const dir = tempDir(t);
  const policyDir = path.join(dir, 'p');
  fs.mkdirSync(policyDir);
  for (const [name, mode] of [['a.sock', undefined], ['b.sock', 0o660]] as const) {
    const socket = path.join(dir, name);
    const service = await startAuthzService({ socket, policyDir, ...(mode ? { socketMode: mode } : {}) }, { logger: capturingLogger().logger, clock: new FakeClock() });
    t.is(fs.statSync(socket).mode & 0o777, mode ?? 0o600);
    await service.close();
    t.false(fs.existsSync(socket));
  }
});

/**
 * `meshid dev --demo` end to end, as a newcomer runs it: a child process whose JSON output shows
 * an identity issued and served over SDS, demo requests allowed and denied with the deciding
 * policy, a rotation on SIGUSR1, and a clean stop on SIGINT. The tests run in order on one process.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import YAML from 'yaml';
import { DEFAULT_AUTHZ_SOCKET, DEFAULT_SDS_SOCKET, SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../../src/config/defaults.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { SdsClient, type SecretWatch } from '../helpers/sds-client.js';
import { opensslVerify } from '../helpers/openssl.js';
import { type LogLine, MeshidProcess } from '../helpers/meshid-process.js';
import { type Bootstrap, clusterPipe } from '../deploy/kubernetes-manifests.js';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

const state = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-dev-'));
const run = path.join(state, 'run');
let dev: MeshidProcess;
let ready: LogLine;
let issuedSerial: string;
let sds: SdsClient | undefined;
let workload: SecretWatch | undefined;

test.before(async () => {
  dev = new MeshidProcess(['dev', '--demo', '--state-dir', state, '--admin-listen', '127.0.0.1:0', '--demo-interval', '300ms']);
  // Startup loads the protos and generates the CA: allow for a busy machine (a bound, not a wait).
  ready = await dev.waitFor('the dev_ready event', (l) => l.event === 'dev_ready', { timeoutMs: 20_000 });
  const issued = await dev.waitFor('the CA issuing the orders SVID', (l) => l.event === 'certificate_issued' && l.identity === ORDERS);
  issuedSerial = String(issued.serial);
});

test.after.always(async () => {
  sds?.close();
  await dev?.stop();
  fs.rmSync(state, { recursive: true, force: true });
});


function leafOf(watch: SecretWatch): { serial: string; uris: string[]; chainPem: string } {
  const chainPem = watch.latest()!.secret.tlsCertificate!.certificateChain;
  const leaf = parseCertificatesPem(chainPem, 'SDS default')[0]!;
  return { serial: leaf.serial, uris: leaf.sans.flatMap((n) => (n.type === 'uri' ? [n.value] : [])), chainPem };
}

test.serial('dev_ready names the identity, the sockets, the admin URL and a bootstrap that points at the sockets', async (t) => {
  t.is(ready.spiffeId, ORDERS);
  t.is(ready.sdsSocket, path.join(run, 'sds.sock'));
  t.is(ready.authzSocket, path.join(run, 'authz.sock'));
  for (const socket of [ready.sdsSocket, ready.authzSocket] as string[]) t.true(fs.statSync(socket).isSocket(), `${socket} is a socket`);
  t.is(fs.statSync(String(ready.sdsSocket)).mode & 0o777, 0o600, 'the SDS socket is 0600 (--sds-socket-mode)');
  // Connecting needs write permission: nobody but the owner may ask for decisions.
  t.is(fs.statSync(String(ready.authzSocket)).mode & 0o022, 0, 'the ext_authz socket is not writable by group or others');
  const expiresIn = Date.parse(String(ready.expiresAt)) - Date.now();
  t.true(expiresIn > 0 && expiresIn <= 61_000, `dev SVIDs are short-lived (expires in ${expiresIn} ms)`);

  // The admin endpoints the Kubernetes probes use.
  t.regex(String(ready.admin), /^http:\/\/127\.0\.0\.1:\d+$/);
  t.is((await fetch(`${ready.admin}/healthz`)).status, 200);
  const readyz = await fetch(`${ready.admin}/readyz`);
  t.is(readyz.status, 200);
  t.like((await readyz.json()) as object, { ready: true, pid: dev.pid }, '/readyz names the process that SIGUSR1 should reach');
  t.regex(String(ready.tokenEndpoint), /^https:\/\/127\.0\.0\.1:\d+\/token$/, 'the dev token endpoint is named');
  t.true(fs.readFileSync(String(ready.jwtRules), 'utf8').includes('issuer: "meshid-dev"'), 'the agent verifies its tokens with these rules');
  t.is(ready.pid, dev.pid);
  t.true(String(ready.msg).includes(`pid ${dev.pid}; kill -USR1 ${dev.pid} rotates now`), 'the banner names the pid');

  // The rendered bootstrap is deploy/envoy/envoy.yaml with the dev sockets in place of the pod's.
  t.is(ready.envoyBootstrap, path.join(state, 'envoy.yaml'));
  const text = fs.readFileSync(String(ready.envoyBootstrap), 'utf8');
  t.false(text.includes(DEFAULT_SDS_SOCKET) || text.includes(DEFAULT_AUTHZ_SOCKET), 'no pod socket path is left');
  const bootstrap = YAML.parse(text, { merge: true }) as Bootstrap;
  const pipe = (name: string) => clusterPipe(bootstrap, name);
  t.is(pipe('meshid_sds'), String(ready.sdsSocket));
  t.is(pipe('meshid_authz'), String(ready.authzSocket));
});

test.serial('the issued identity is served over the SDS socket, and verifies against ROOTCA with openssl', async (t) => {
  sds = new SdsClient({ socketPath: String(ready.sdsSocket), node: { id: 'dev-test', cluster: 'dev-test' } });
  workload = sds.subscribe(SDS_WORKLOAD_SECRET);
  const roots = sds.subscribe(SDS_ROOT_SECRET);
  await Promise.all([workload.waitFor(() => true), roots.waitFor(() => true)]);
  const leaf = leafOf(workload);
  t.is(leaf.serial, issuedSerial);
  t.deepEqual(leaf.uris, [ORDERS]);
  const [leafPem, ...intermediates] = leaf.chainPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
  const verdict = opensslVerify(state, {
    roots: roots.latest()!.secret.validationContext!.trustedCa,
    leaf: leafPem!,
    ...(intermediates.length > 0 ? { intermediates: intermediates.join('\n') } : {}),
  });
  t.true(verdict.ok, verdict.output);
});

test.serial('demo requests are allowed by shop/allow-shop and denied by shop/deny-admin, and ext_authz logs its decisions', async (t) => {
  const allowed = await dev.waitFor('an allowed demo request', (l) => l.event === 'demo_request' && l.allowed === true);
  t.is(allowed.status, 200);
  t.regex(String(allowed.decidedBy), /^shop\/allow-shop\b/);
  const denied = await dev.waitFor('a demo request denied by deny-admin', (l) => l.event === 'demo_request' && String(l.decidedBy).startsWith('shop/deny-admin'));
  t.is(denied.allowed, false);
  t.is(denied.status, 403);
  t.is(denied.path, '/admin/orders/42');

  const decision = (outcome: string, policy: string) =>
    dev.waitFor(`an ext_authz ${outcome} decision by ${policy}`, (l) => l.component === 'authz-decision' && l.outcome === outcome && l.policy === policy);
  const allowLine = await decision('allow', 'shop/allow-shop');
  const denyLine = await decision('deny', 'shop/deny-admin');
  t.is(allowLine.principal, FRONTEND);
  t.like(denyLine, { principal: FRONTEND, method: 'DELETE', path: '/admin/orders/42', reason: 'deny_policy_matched' });
});

test.serial('a second meshid dev on the same state dir is refused with a clear message and leaves the first one untouched', async (t) => {
  const snapshot = () =>
    Object.fromEntries(
      fs
        .readdirSync(state, { recursive: true, encoding: 'utf8' })
        .map((f) => path.join(state, f))
        .filter((f) => fs.lstatSync(f).isFile())
        .map((f) => [path.relative(state, f), crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')]),
    );
  const before = snapshot();
  const second = new MeshidProcess(['dev', '--demo', '--state-dir', state, '--admin-listen', '127.0.0.1:0']);
  const exit = await second.exited;
  t.not(exit.code, 0);
  t.is(exit.signal, null);
  t.regex(second.stderr, /^meshid dev: .*in use by another meshid dev .*sds\.sock/);
  t.notRegex(second.stderr, /^\s+at /m, 'no stack trace');
  t.is(second.stderr.trim().split('\n').length, 1, second.stderr);
  t.deepEqual(snapshot(), before, 'tokens, CA state and bootstrap of the running instance are unchanged');
  t.true(fs.statSync(path.join(run, 'sds.sock')).isSocket());
});

test.serial('SIGUSR1 rotates at once: a rotated event with a new serial, pushed to the SDS subscriber', async (t) => {
  const from = dev.lines.length;
  dev.signal('SIGUSR1');
  const rotated = await dev.waitFor('a rotated event for orders', (l) => l.event === 'rotated' && l.spiffeId === ORDERS, { from });
  t.not(rotated.serial, issuedSerial);
  t.true(Date.parse(String(rotated.expiresAt)) >= Date.parse(String(ready.expiresAt)));
  await workload!.waitFor((s) => parseCertificatesPem(s.secret.tlsCertificate!.certificateChain, 'SDS default')[0]!.serial === rotated.serial);
  t.deepEqual(leafOf(workload!).uris, [ORDERS]);
  // The frontend's first SVID is an issuance, not a rotation: no rotated event was printed for it before SIGUSR1.
  t.false(dev.lines.slice(0, from).some((l) => l.event === 'rotated'));
});

test.serial('SIGINT stops everything: exit 0, a stopped event, no sockets left, only JSON on stdout and nothing on stderr', async (t) => {
  sds?.close();
  sds = undefined;
  dev.signal('SIGINT');
  const exit = await dev.exited;
  t.deepEqual(exit, { code: 0, signal: null });
  t.truthy(dev.lines.find((l) => l.event === 'stopped'));
  const left = fs.readdirSync(run).filter((f) => fs.lstatSync(path.join(run, f)).isSocket());
  t.deepEqual(left, []);
  t.deepEqual(dev.nonJson, []);
  t.is(dev.stderr, '');
});

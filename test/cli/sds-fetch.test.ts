import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { type DiscoveryRequest__Output, SECRET_TYPE_URL } from '../../src/envoy/protos.js';
import { certificateFingerprint } from '../../src/identity/bundle.js';
import { listenOnUnixSocket } from '../../src/lib/unix-socket.js';
import { systemClock } from '../../src/lib/clock.js';
import { sdsServiceDefinition } from '../../src/sds/server.js';
import { encodeSecret, responseWithNonce } from '../../src/sds/secret-encoding.js';
import type { SecretView } from '../../src/cli/sds-fetch.js';
import { eventually, ORDERS, Stand } from '../agent/stand.js';
import { runCli } from '../authz/helpers/cli.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { opensslVerify } from '../helpers/openssl.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestServer } from '../sds/support.js';

function views(stdout: string): SecretView[] {
  return stdout.trim().split('\n').map((l) => JSON.parse(l) as SecretView);
}

test('sds fetch: default and ROOTCA from the SDS server, ACKed, printed and written as svid.pem, svid.key (0600), bundle.pem', async (t) => {
  const s = await startTestServer(t);
  const out = path.join(tempDir(t), 'out');
  const r = await runCli(['sds', 'fetch', '--socket', s.server.socketPath, '--out', out, '--json']);
  t.is(r.code, 0, r.stderr);
  const svid = s.source.latestSvid()!;
  const got = views(r.stdout);
  t.is(got.length, 2);
  const cert = got.find((v) => v.name === 'default');
  const bundle = got.find((v) => v.name === 'ROOTCA');
  t.like(cert, { name: 'default', type: 'tls_certificate', version: svid.version, spiffeId: s.source.spiffeId, serial: svid.leaf.cert.serial, key: 'EC prime256v1' });
  t.is(cert!.certificates.length, 1);
  t.is(cert!.notAfter, svid.leaf.cert.notAfter.toISOString().replace('.000Z', 'Z'));
  const root = s.source.bundleRoots()[0]!;
  t.like(bundle, { name: 'ROOTCA', type: 'validation_context' });
  t.deepEqual(bundle!.certificates.map((c) => c.sha256), [certificateFingerprint(root.cert)]);
  t.is(bundle!.certificates[0]!.subject, root.cert.subjectText);

  t.is(fs.readFileSync(path.join(out, 'svid.pem'), 'utf8'), svid.certChainPem);
  t.is(fs.readFileSync(path.join(out, 'svid.key'), 'utf8'), svid.privateKeyPem);
  t.is(fs.statSync(path.join(out, 'svid.key')).mode & 0o777, 0o600);
  const verified = opensslVerify(tempDir(t), { roots: fs.readFileSync(path.join(out, 'bundle.pem'), 'utf8'), leaf: fs.readFileSync(path.join(out, 'svid.pem'), 'utf8') });
  t.true(verified.ok, verified.output);
  const modulus = spawnSync('openssl', ['pkey', '-in', path.join(out, 'svid.key'), '-noout'], { encoding: 'utf8' });
  t.is(modulus.status, 0, modulus.stderr);
  // Every response was ACKed (one stream per name, as Envoy), and the streams ended cleanly.
  t.is(s.metrics.acks, 2);
  t.is(s.metrics.nacks, 0);
  t.is(s.server.streams(), 0);

  const text = await runCli(['sds', 'fetch', '--socket', s.server.socketPath, '--name', 'default']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, new RegExp(`^default: tls_certificate, version ${svid.version}\n  SPIFFE ID  ${s.source.spiffeId}\n  serial     ${svid.leaf.cert.serial}\n`));
  t.regex(text.stdout, /not after {2}\S+Z \(in 59m\)/);
  t.regex(text.stdout, /chain {6}1 certificate, leaf first/);
});

test('sds fetch: an unknown name exits 1 naming the served ones; no server, or no answer in --timeout, exits 2', async (t) => {
  const s = await startTestServer(t, { identity: { ready: false } });
  const unknown = await runCli(['sds', 'fetch', '--socket', s.server.socketPath, '--name', 'nope']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /meshid sds fetch: nope: the agent refused it: NOT_FOUND: unknown SDS secret "nope": this agent serves "default"/);

  const waiting = await runCli(['sds', 'fetch', '--socket', s.server.socketPath, '--timeout', '300ms']);
  t.is(waiting.code, 2);
  t.regex(waiting.stderr, /no answer from unix:\S+ within 300 ms \(does the agent have an SVID yet\?/);
  t.is(waiting.stdout, '');

  const none = await runCli(['sds', 'fetch', '--socket', path.join(tempDir(t), 'absent.sock')]);
  t.is(none.code, 2);
  t.regex(none.stderr, /cannot reach the SDS server at unix:\S+absent\.sock: /);

  const clash = await runCli(['sds', 'fetch', '--socket', s.server.socketPath, '--name', 'file-root:/a', '--name', 'file-root_/a', '--out', tempDir(t)]);
  t.is(clash.code, 2);
  t.regex(clash.stderr, /would both write file-root__a\.pem/);
});

test('sds fetch: a response Envoy would reject (another name, a key of another certificate) is NACKed and exits 1', async (t) => {
  const root = makeRoot();
  const leaf = makeLeaf(root);
  const other = makeLeaf(root);
  const requests: DiscoveryRequest__Output[] = [];
  const server = new grpc.Server();
  server.addService(sdsServiceDefinition(), {
    StreamSecrets: (call: grpc.ServerDuplexStream<DiscoveryRequest__Output, Buffer>) => {
      call.on('data', (req: DiscoveryRequest__Output) => {
        requests.push(req);
        if (req.response_nonce) return;
        const name = req.resource_names?.[0] ?? "";
        // "default" comes back under another name; "mismatch" with a key that is not the leaf's.
        const secret = name === 'default'
          ? encodeSecret('ROOTCA', 'v1', { type: 'validation_context', trustedCaPem: root.pem })
          : encodeSecret(name, 'v1', { type: 'tls_certificate', certificateChainPem: leaf.pem, privateKeyPem: other.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
        call.write(responseWithNonce(secret, 'n1'));
      });
      call.on('end', () => call.end());
    },
    FetchSecrets: () => {},
    DeltaSecrets: () => {},
  } as grpc.UntypedServiceImplementation);
  const socket = await listenOnUnixSocket(server, path.join(tempDir(t, 'meshid-sock-'), 'fake.sock'), 0o600, systemClock, { name: 'sds', label: 'SDS' });
  t.teardown(() => {
    server.forceShutdown();
    socket.remove();
  });

  const wrongName = await runCli(['sds', 'fetch', '--socket', socket.path, '--name', 'default']);
  t.is(wrongName.code, 1);
  t.regex(wrongName.stderr, /default: the response \(version v1\) is one Envoy would reject, so it was NACKed: Unexpected SDS secret \(expecting default\): ROOTCA/);
  const mismatch = await runCli(['sds', 'fetch', '--socket', socket.path, '--name', 'mismatch', '--node', 'test-node']);
  t.is(mismatch.code, 1);
  t.regex(mismatch.stderr, /mismatch: .*NACKed: mismatch: private_key does not match the leaf certificate/);
  // As Envoy: the node on the first message, then a NACK with error_detail, the nonce, and no version held.
  const nack = requests.find((r) => r.resource_names?.[0] === 'mismatch' && r.response_nonce === 'n1')!;
  t.is(requests.find((r) => r.resource_names?.[0] === 'mismatch' && !r.response_nonce)?.node?.id, 'test-node');
  t.is(nack.type_url, SECRET_TYPE_URL);
  t.is(nack.version_info, '');
  t.is(nack.error_detail?.code, 13);
  t.regex(nack.error_detail?.message ?? '', /does not match/);
});

test('sds fetch --watch: each new version is printed and written until SIGTERM, then exit 0', async (t) => {
  const s = await startTestServer(t);
  const out = path.join(tempDir(t), 'out');
  const p = new MeshidProcess(['sds', 'fetch', '--socket', s.server.socketPath, '--watch', '--json', '--out', out]);
  t.teardown(() => p.stop());
  const first = s.source.latestSvid()!.version;
  await p.waitFor('the first SVID', (l) => l.name === 'default' && l.version === first);
  await p.waitFor('the bundle', (l) => l.name === 'ROOTCA');
  const next = s.source.rotate();
  const line = await p.waitFor('the rotated SVID', (l) => l.name === 'default' && l.version === next.version);
  t.is(line.serial, next.leaf.cert.serial);
  t.is(fs.readFileSync(path.join(out, 'svid.pem'), 'utf8'), next.certChainPem);
  t.is(fs.readFileSync(path.join(out, 'svid.key'), 'utf8'), next.privateKeyPem);
  const root2 = s.source.addRoot();
  await p.waitFor('the new bundle', (l) => l.name === 'ROOTCA' && (l.certificates as unknown[]).length === 2);
  t.true(fs.readFileSync(path.join(out, 'bundle.pem'), 'utf8').includes(root2.pem.trim()));
  p.signal('SIGTERM');
  t.deepEqual(await p.exited, { code: 0, signal: null });
  t.is(s.metrics.nacks, 0);
});

test('sds fetch against a real agent (real CA): its SVID and bundle, which openssl verifies', async (t) => {
  const stand = await Stand.start(t);
  await stand.settled();
  const out = tempDir(t);
  const r = await runCli(['sds', 'fetch', '--socket', stand.agent.sds.socketPath, '--out', out, '--json']);
  t.is(r.code, 0, r.stderr);
  const cert = views(r.stdout).find((v) => v.name === 'default')!;
  t.is(cert.spiffeId, ORDERS);
  t.is(cert.serial, stand.servedVersion());
  const verified = opensslVerify(tempDir(t), { roots: fs.readFileSync(path.join(out, 'bundle.pem'), 'utf8'), leaf: fs.readFileSync(path.join(out, 'svid.pem'), 'utf8') });
  t.true(verified.ok, verified.output);
});

test('a real agent with --named-cert and --svid-dir: sds fetch gets named:partner into partner.pem/partner.key, and the sink wrote the same files', async (t) => {
  const partnerRoot = makeRoot('partner.example');
  const leaf = makeLeaf(partnerRoot, 'spiffe://partner.example/client/orders');
  const stand = await Stand.start(t, {
    agentArgs: (dir) => {
      fs.writeFileSync(path.join(dir, 'partner.crt'), leaf.pem);
      fs.writeFileSync(path.join(dir, 'partner.key'), leaf.key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      return [`--named-cert=partner=${path.join(dir, 'partner.crt')},${path.join(dir, 'partner.key')}`, `--svid-dir=${path.join(dir, 'files')}`];
    },
  });
  await stand.settled();
  const out = tempDir(t);
  const r = await runCli(['sds', 'fetch', '--socket', stand.agent.sds.socketPath, '--name', 'named:partner', '--out', out]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^named:partner: tls_certificate, version \S+\n {2}SPIFFE ID {2}spiffe:\/\/partner\.example\/client\/orders\n/);
  t.regex(r.stdout, new RegExp(`wrote {6}${out}/partner\\.pem, ${out}/partner\\.key \\(0600\\)`));
  t.is(fs.readFileSync(path.join(out, 'partner.pem'), 'utf8'), leaf.pem);
  const verified = opensslVerify(tempDir(t), { roots: partnerRoot.pem, leaf: fs.readFileSync(path.join(out, 'partner.pem'), 'utf8') });
  t.true(verified.ok, verified.output);
  await eventually(() => fs.existsSync(path.join(stand.dir, 'files', 'partner.key')), 10_000, 'the sink to write the named pair');
  t.is(fs.readFileSync(path.join(stand.dir, 'files', 'partner.key'), 'utf8'), fs.readFileSync(path.join(out, 'partner.key'), 'utf8'));
  t.is(fs.statSync(path.join(stand.dir, 'files', 'partner.key')).mode & 0o777, 0o600);
});

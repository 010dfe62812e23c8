/** CaClient against the real CA and against a real gRPC server that misbehaves on purpose. */
import tls from 'node:tls';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { CaClient } from '../../src/ca/client.js';
import { caServiceDefinition, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/ca/protocol.js';
import { privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { csrFor, FRONTEND, leafOf, STATIC_TOKEN, startHarness } from './harness.js';

const token = { kind: 'token' as const, token: STATIC_TOKEN };

/** A TLS gRPC server implementing the CA service with a canned behaviour. */
async function fakeCa(t: import('ava').ExecutionContext, respond: (cb: grpc.sendUnaryData<IstioCertificateResponse>) => void) {
  const root = makeRoot('example.org');
  const serving = makeLeaf(root, 'spiffe://example.org/ca', { sans: [{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }], sanCritical: false, extKeyUsage: ['1.3.6.1.5.5.7.3.1'] });
  const server = new grpc.Server();
  server.addService(caServiceDefinition(), {
    CreateCertificate: (_call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: grpc.sendUnaryData<IstioCertificateResponse>) => respond(cb),
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(privateKeyPkcs8Pem(serving.key.privateKey)), cert_chain: Buffer.from(serving.pem) }]);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  return { address: `127.0.0.1:${port}`, bundlePem: root.pem, root };
}

test('malformed responses become { ok: false, kind: internal }', async (t) => {
  const root = makeRoot('example.org');
  const leaf = makeLeaf(root);
  const responses: Array<[string, IstioCertificateResponse, RegExp]> = [
    ['empty', { cert_chain: [] }, /no certificates/],
    ['one element', { cert_chain: [leaf.pem] }, /a chain of one certificate/],
    ['two certificates in one element', { cert_chain: [leaf.pem + root.pem, root.pem] }, /element 1 is not exactly one PEM certificate/],
    ['not PEM', { cert_chain: ['hello', root.pem] }, /element 1 is not exactly one PEM certificate/],
    ['PEM that is not a certificate', { cert_chain: [leaf.pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] }, /element 2: .*not valid DER/],
  ];
  let next: IstioCertificateResponse = {};
  const fake = await fakeCa(t, (cb) => cb(null, next));
  const client = new CaClient({ address: fake.address, caBundlePem: fake.bundlePem });
  t.teardown(() => client.close());
  for (const [name, response, message] of responses) {
    next = response;
    const r = await client.createCertificate(csrFor(FRONTEND).pem, token);
    t.like(r, { ok: false, kind: 'internal', grpcCode: grpc.status.INTERNAL }, name);
    if (!r.ok) t.regex(r.message, message, name);
  }
  next = { cert_chain: [leaf.pem, root.pem] };
  t.like(await client.createCertificate(csrFor(FRONTEND).pem, token), { ok: true, chainPem: [leaf.pem, root.pem] });
});

test('gRPC errors map to ErrorKind; a deadline is enforced', async (t) => {
  let behaviour: (cb: grpc.sendUnaryData<IstioCertificateResponse>) => void = () => {};
  const fake = await fakeCa(t, (cb) => behaviour(cb));
  const client = new CaClient({ address: fake.address, caBundlePem: fake.bundlePem });
  t.teardown(() => client.close());
  behaviour = (cb) => cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'slow down' });
  t.like(await client.createCertificate('csr', token), { ok: false, kind: 'resource_exhausted', grpcCode: grpc.status.RESOURCE_EXHAUSTED, message: `CA ${fake.address}: slow down` });
  behaviour = (cb) => cb({ code: grpc.status.UNAVAILABLE, details: 'draining' });
  t.like(await client.createCertificate('csr', token), { ok: false, kind: 'unavailable', grpcCode: grpc.status.UNAVAILABLE });
  behaviour = () => {}; // never answers
  const impatient = new CaClient({ address: fake.address, caBundlePem: fake.bundlePem, deadlineMs: 300 });
  t.teardown(() => impatient.close());
  const started = Date.now();
  t.like(await impatient.createCertificate('csr', token), { ok: false, kind: 'deadline_exceeded', grpcCode: grpc.status.DEADLINE_EXCEEDED });
  t.true(Date.now() - started < 5000, 'the call ends at its deadline');
});

test('TLS is verified against the bundle: another root, or nobody listening, is unavailable', async (t) => {
  const h = await startHarness(t);
  const wrongBundle = new CaClient({ address: h.ca.address, caBundlePem: makeRoot('example.org').pem, deadlineMs: 2000 });
  t.teardown(() => wrongBundle.close());
  t.like(await wrongBundle.createCertificate(csrFor(FRONTEND).pem, token), { ok: false, kind: 'unavailable' });
  await h.ca.close();
  t.like(await h.client.createCertificate(csrFor(FRONTEND).pem, token), { ok: false, kind: 'unavailable' });
});

test('the serving certificate names --san entries, and is renewed at half its life on the CA clock', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { san: ['meshid-ca.test'] }, { clock });
  const viaName = new CaClient({ address: h.ca.address, caBundlePem: h.ca.bundlePem, serverName: 'meshid-ca.test' });
  t.teardown(() => viaName.close());
  t.true((await viaName.createCertificate(csrFor(FRONTEND).pem, token)).ok);
  const unknownName = new CaClient({ address: h.ca.address, caBundlePem: h.ca.bundlePem, serverName: 'elsewhere.test', deadlineMs: 2000 });
  t.teardown(() => unknownName.close());
  t.like(await unknownName.createCertificate(csrFor(FRONTEND).pem, token), { ok: false, kind: 'unavailable' });

  const before = await servingCertificate(h.ca.port);
  t.regex(before.subjectaltname ?? '', /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, DNS:meshid-ca\.test/);
  await clock.advance(12 * 3_600_000 + 1000);
  const after = await servingCertificate(h.ca.port);
  t.not(after.serialNumber, before.serialNumber, 'a new serving certificate');
  t.not(after.fingerprint256, before.fingerprint256);
});

test('an mTLS identity change opens a new channel and the old one is closed', async (t) => {
  const h = await startHarness(t);
  const a = csrFor(FRONTEND);
  const r1 = await h.client.createCertificate(a.pem, token);
  if (!r1.ok) return t.fail(r1.message);
  const { mtlsAuth } = await import('./harness.js');
  const r2 = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth(r1.chainPem, a.key));
  if (!r2.ok) return t.fail(r2.message);
  // White-box: the channel cache is private; the test reads it to see the old channel shut down.
  const channelOf = () => (h.client as unknown as { mtlsChannel: { client: grpc.Client } }).mtlsChannel.client;
  const firstChannel = channelOf();
  t.is(await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth(r1.chainPem, a.key)).then((r) => r.ok), true);
  t.is(channelOf(), firstChannel, 'the same identity reuses its channel');
  // The rotated identity is used for the next renewal (the CA logs which certificate authenticated).
  const b = csrFor(FRONTEND);
  const r3 = await h.client.createCertificate(b.pem, token);
  if (!r3.ok) return t.fail(r3.message);
  const r4 = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth(r3.chainPem, b.key));
  t.true(r4.ok);
  t.not(channelOf(), firstChannel);
  t.is(firstChannel.getChannel().getConnectivityState(false), grpc.connectivityState.SHUTDOWN, 'the old identity channel is closed');
  t.deepEqual(leafOf((r4 as { chainPem: string[] }).chainPem).sans, [{ type: 'uri', value: FRONTEND }]);
  t.is(h.logs.filter((l) => l.event === 'certificate_issued' && l.auth === 'mtls').length, 3);
});

function servingCertificate(port: number): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

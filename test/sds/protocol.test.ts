import crypto from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { SECRET_TYPE_URL } from '../../src/envoy/protos.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { eventually, startTestServer, WAIT_MS } from './support.js';
import { RawStream } from './raw-stream.js';

const NODE_ID = 'sidecar~10.0.0.1~app.default~default.svc.cluster.local';

test('default carries the SVID chain and its PKCS#8 key, inline, named as requested, and is ACKed', async (t) => {
  const s = await startTestServer(t);
  const w = s.client().subscribe('default');
  const got = await w.nextUpdate();
  const svid = s.source.currentSvid()!;
  t.is(got.version, svid.version);
  t.is(got.secret.name, 'default');
  t.is(got.secret.tlsCertificate?.certificateChain, svid.certChainPem);
  t.regex(got.secret.tlsCertificate!.privateKey, /^-----BEGIN PRIVATE KEY-----/);
  const key = crypto.createPrivateKey(got.secret.tlsCertificate!.privateKey);
  t.true(new crypto.X509Certificate(got.secret.tlsCertificate!.certificateChain).checkPrivateKey(key));
  await eventually(() => s.metrics.acks === 1, WAIT_MS, 'the ACK');
  t.deepEqual(w.protocolErrors, []);
  t.deepEqual(w.nacks, []);
});

test('ROOTCA and spiffe://<trust domain> carry the bundle as a validation context', async (t) => {
  const s = await startTestServer(t);
  const c = s.client();
  const [root, td] = await Promise.all([c.subscribe('ROOTCA').nextUpdate(), c.subscribe('spiffe://example.org').nextUpdate()]);
  const bundle = s.source.currentBundle()!;
  for (const [got, name] of [[root, 'ROOTCA'], [td, 'spiffe://example.org']] as const) {
    t.is(got.secret.name, name);
    t.is(got.version, bundle.version);
    t.is(got.secret.validationContext?.trustedCa, bundle.rootsPem);
    t.is(got.secret.tlsCertificate, undefined);
  }
});

test('a rotation reaches the subscribed stream; an added and a removed root reach the bundle streams', async (t) => {
  const s = await startTestServer(t);
  const c = s.client();
  const cert = c.subscribe('default');
  const roots = c.subscribe('ROOTCA');
  await Promise.all([cert.nextUpdate(), roots.nextUpdate()]);

  const certNext = cert.nextUpdate();
  const rotated = s.source.rotate();
  t.is((await certNext).version, rotated.version);
  t.is((await certNext).secret.tlsCertificate?.certificateChain, rotated.certChainPem);

  const added = roots.nextUpdate();
  const newRoot = s.source.addRoot();
  const afterAdd = await added;
  t.is(parseCertificatesPem(afterAdd.secret.validationContext!.trustedCa, 'bundle').length, 2);

  const removed = roots.nextUpdate();
  s.source.removeRoot(s.source.bundleRoots()[0]!);
  const afterRemove = await removed;
  const left = parseCertificatesPem(afterRemove.secret.validationContext!.trustedCa, 'bundle');
  t.is(left.length, 1);
  t.deepEqual(left[0]!.der, newRoot.der);
});

test('a NACK is logged with the node and Envoy\'s message, counted, and the same content is not sent again', async (t) => {
  const s = await startTestServer(t);
  let rejectVersion = s.source.currentSvid()!.version;
  const w = s.client({ reject: (_secret, version) => (version === rejectVersion ? 'Failed to load certificate chain: bad thing' : undefined) }).subscribe('default');

  await eventually(() => s.metrics.nacks === 1, WAIT_MS, 'the NACK');
  t.is(w.latest(), undefined, 'the client kept nothing');
  const nackLog = s.logs().find((l) => String(l.msg).includes('NACK'));
  t.truthy(nackLog);
  t.is(nackLog!.node, NODE_ID, 'node id remembered from the first message (not sent on the NACK)');
  t.is(nackLog!.resource, 'default');
  t.is(nackLog!.rejectedVersion, rejectVersion);
  t.is(nackLog!.envoyError, 'Failed to load certificate chain: bad thing');

  // The source signalling without a change does not resend the rejected content. The source
  // notifies synchronously and the stream is ordered, so a resend would reach the client before
  // the rotation that follows: the next response the client sees must be the new content.
  s.source.notify();
  const next = w.nextUpdate();
  const rotated = s.source.rotate();
  t.is((await next).version, rotated.version);
  rejectVersion = rotated.version;
  t.is(w.nacks.length, 1, 'rejected content was sent again');
  t.is(s.metrics.responses.get('workload'), 2, 'one rejected response, then the rotation');
  t.is(w.accepted, 1);
  t.false(JSON.stringify(s.logs()).includes('PRIVATE KEY'), 'a private key reached the logs');
});

test('stale nonces are ignored: an old ACK or NACK does not count, the current one does', async (t) => {
  const s = await startTestServer(t);
  const raw = new RawStream(s.client());
  raw.send({ node: { id: NODE_ID, cluster: 'app' }, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  const first = (await raw.next())!;
  const v2 = s.source.rotate().version;
  const second = (await raw.next())!;
  t.is(second.version, v2);
  t.not(first.nonce, second.nonce);

  // A NACK that answers the first response arrives after the second was sent: stale.
  raw.send({ version_info: '', response_nonce: first.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL, error_detail: { code: 13, message: 'late' } });
  raw.send({ version_info: first.version, response_nonce: first.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  raw.send({ version_info: v2, response_nonce: second.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  await eventually(() => s.metrics.acks === 1, WAIT_MS, 'the current ACK');
  t.is(s.metrics.nacks, 0, 'stale NACK was counted');
  t.is(await raw.next(150), undefined, 'a stale request caused a response');

  raw.send({ version_info: v2, response_nonce: second.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL, error_detail: { code: 13, message: 'now' } });
  await eventually(() => s.metrics.nacks === 1, WAIT_MS, 'the current NACK');
  raw.cancel();
});

test('every stream gets the same encoded response for one version; a stream sent the same encoding twice gets a nonce of its own', async (t) => {
  const s = await startTestServer(t);
  const a = new RawStream(s.client());
  const b = new RawStream(s.client());
  for (const raw of [a, b]) raw.send({ node: { id: NODE_ID, cluster: 'app' }, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  const [fromA, fromB] = [(await a.next())!, (await b.next())!];
  t.is(fromA.nonce, fromB.nonce, 'one encoding, one nonce, for every stream');
  t.is(fromA.version, fromB.version);

  // a: default -> ROOTCA -> default again, without a rotation: the second default is the same encoding.
  a.send({ version_info: fromA.version, response_nonce: fromA.nonce, resource_names: ['ROOTCA'], type_url: SECRET_TYPE_URL });
  const root = (await a.next())!;
  t.deepEqual(root.names, ['ROOTCA']);
  a.send({ version_info: root.version, response_nonce: root.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  const again = (await a.next())!;
  t.is(again.version, fromA.version);
  t.deepEqual(again.names, ['default']);
  t.not(again.nonce, fromA.nonce, 'a nonce repeated on one stream');
  // The old nonce is now stale on a; the new one is ACKed.
  a.send({ version_info: fromA.version, response_nonce: fromA.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL, error_detail: { code: 13, message: 'late' } });
  a.send({ version_info: again.version, response_nonce: again.nonce, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  await eventually(() => s.metrics.acks === 3, WAIT_MS, 'the ACKs of ROOTCA, default again (and the first default)');
  t.is(s.metrics.nacks, 0, 'the stale NACK was counted');
  a.cancel();
  b.cancel();
});

test('the first message of a stream is a fresh subscription whatever version and nonce it carries', async (t) => {
  const s = await startTestServer(t);
  const current = s.source.currentSvid()!.version;
  const raw = new RawStream(s.client());
  raw.send({ node: { id: NODE_ID, cluster: 'app' }, version_info: current, response_nonce: 'from-an-earlier-stream', resource_names: ['default'], type_url: SECRET_TYPE_URL });
  const res = await raw.next();
  t.truthy(res, 'no answer to a resubscription with the current version');
  t.is(res!.version, current);
  t.deepEqual(res!.names, ['default']);
  raw.cancel();
});

test('after a broken stream the client resubscribes with its version and gets the current secret', async (t) => {
  const s = await startTestServer(t);
  const w = s.client().subscribe('default');
  const first = await w.nextUpdate();
  const again = w.nextUpdate();
  w.breakStream();
  const got = await again;
  t.is(got.version, first.version);
  t.is(w.streamsOpened, 2);
  t.is(w.statuses[0]!.code, grpc.status.CANCELLED);
  await eventually(() => s.server.streams() === 1, WAIT_MS, 'the broken stream to be released');
  // and the new stream gets pushes
  const next = w.nextUpdate();
  const rotated = s.source.rotate();
  t.is((await next).version, rotated.version);
});

test('a request before the first SVID and bundle waits for them, with no empty answer', async (t) => {
  const s = await startTestServer(t, { identity: { ready: false } });
  const c = s.client();
  const cert = c.subscribe('default');
  const roots = c.subscribe('ROOTCA');
  const raw = new RawStream(c);
  raw.send({ node: { id: NODE_ID, cluster: 'app' }, resource_names: ['default'], type_url: SECRET_TYPE_URL });
  // All three requests are handled (each stream subscribed) before anything exists to send.
  await eventually(() => s.server.usage().subscribers === 3, WAIT_MS, 'the three streams to subscribe');
  t.is(s.server.streams(), 3);

  const rootsNext = roots.nextUpdate();
  const bundle = s.source.publishBundle();
  t.is((await rootsNext).version, bundle.version);
  t.is(cert.latest(), undefined, 'the bundle alone must not answer the certificate stream');

  const certNext = cert.nextUpdate();
  const svid = s.source.rotate();
  t.is((await certNext).version, svid.version);
  // Responses arrive in order, so an empty answer sent while waiting would come first.
  const rawRes = await raw.next();
  t.is(rawRes?.version, svid.version, 'an answer was sent before the SVID existed');
  t.deepEqual(rawRes?.names, ['default']);
  t.is(raw.received, 1);
  t.is(cert.accepted, 1);
  t.deepEqual([...cert.protocolErrors, ...roots.protocolErrors], []);
  raw.cancel();
});

test('an SVID that expired while streams hold it is not handed to a stream that subscribes later', async (t) => {
  const s = await startTestServer(t, { identity: { ttlMs: 60_000 } });
  const early = s.client().subscribe('default');
  const first = await early.nextUpdate();
  await s.clock.advance(61_000); // the source does not notify: the server must not rely on it
  const late = s.client().subscribe('default');
  // Once the late stream has subscribed, its request is handled: whatever it was given is on the
  // wire ahead of the rotation below, so its first secret must be the fresh one.
  await eventually(() => s.server.usage().subscribers === 2, WAIT_MS, 'the late stream to subscribe');
  const both = Promise.all([early.nextUpdate(), late.waitFor(() => true)]);
  const fresh = s.source.rotate();
  t.deepEqual((await both).map((r) => r.version), [fresh.version, fresh.version]);
  t.is(late.accepted, 1, 'the expired SVID was served to a new stream');
  t.is(early.accepted, 2);
  t.not(first.version, fresh.version);
});

test('unknown and malformed names get a clear gRPC error', async (t) => {
  const s = await startTestServer(t);
  const c = s.client({ reconnect: false });
  const cases: Array<[string, grpc.status, RegExp]> = [
    ['mystery', grpc.status.NOT_FOUND, /unknown SDS secret "mystery": this agent serves "default", "ROOTCA"/],
    ['spiffe://other.org', grpc.status.NOT_FOUND, /this agent's trust domain is "example.org"/],
    ['spiffe://example.org/ns/x', grpc.status.NOT_FOUND, /named by its trust domain alone/],
    ['file-cert:/only-one-path', grpc.status.INVALID_ARGUMENT, /expected file-cert:<cert path>~<key path>/],
    ['file-root:relative/ca.pem', grpc.status.INVALID_ARGUMENT, /must be absolute/],
  ];
  for (const [name, code, message] of cases) {
    const w = c.subscribe(name);
    const st = await w.nextStatus();
    t.is(st.code, code, name);
    t.regex(st.details, message, name);
    t.is(w.accepted, 0);
  }
  t.deepEqual(s.metrics.rejected, ['sds_unknown_secret', 'sds_unknown_secret', 'sds_unknown_secret', 'sds_bad_file_cert_name', 'sds_relative_file_path']);
  await eventually(() => s.server.streams() === 0, WAIT_MS, 'refused streams to be released');
});

test('a request for several names or another type is refused with INVALID_ARGUMENT', async (t) => {
  const s = await startTestServer(t);
  const c = s.client();
  const several = new RawStream(c);
  several.send({ resource_names: ['default', 'ROOTCA'], type_url: SECRET_TYPE_URL });
  await several.next();
  t.is(several.status?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(several.status!.details, /exactly one secret name per stream \(got 2\)/);
  const cluster = new RawStream(c);
  cluster.send({ resource_names: ['default'], type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' });
  await cluster.next();
  t.is(cluster.status?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(cluster.status!.details, /serves type.googleapis.com\/envoy.extensions.transport_sockets.tls.v3.Secret, not type.googleapis.com\/envoy.config.cluster.v3.Cluster/);
});

test('the trust domain bundle stream fails when the bundle turns out to be for another trust domain', async (t) => {
  const s = await startTestServer(t, { identity: { ready: false } });
  const w = s.client({ reconnect: false }).subscribe('spiffe://other.org');
  const status = w.nextStatus();
  // The stream waits for a bundle: the mismatch is found when it arrives, not at subscription.
  await eventually(() => s.server.usage().subscribers === 1, WAIT_MS, 'the stream to subscribe');
  s.source.publishBundle();
  const st = await status;
  t.is(st.code, grpc.status.NOT_FOUND);
  t.regex(st.details, /trust domain is "example.org"/);
});

test('FetchSecrets answers at once, waits for a first SVID, and is bounded by the deadline', async (t) => {
  const ready = await startTestServer(t);
  const got = await ready.client().fetch('default');
  t.is(got.version, ready.source.currentSvid()!.version);
  t.truthy(got.secret.tlsCertificate);
  const unknown = await ready.client().fetch('nope').catch((e: grpc.ServiceError) => e);
  t.is((unknown as grpc.ServiceError).code, grpc.status.NOT_FOUND);

  const waiting = await startTestServer(t, { identity: { ready: false } });
  const c = waiting.client();
  const timedOut = await c.fetch('default', 200).catch((e: grpc.ServiceError) => e);
  t.is((timedOut as grpc.ServiceError).code, grpc.status.DEADLINE_EXCEEDED);
  await eventually(() => waiting.server.usage().pendingFetches === 0 && waiting.server.usage().feeds === 0, WAIT_MS, 'the timed-out fetch to be released');

  const pending = c.fetch('default', 5000);
  await eventually(() => waiting.server.usage().pendingFetches === 1, WAIT_MS, 'the fetch to wait');
  const svid = waiting.source.rotate();
  t.is((await pending).version, svid.version);
  t.is(waiting.server.usage().pendingFetches, 0);
});

test('DeltaSecrets is answered UNIMPLEMENTED with a message', async (t) => {
  const s = await startTestServer(t);
  const st = await s.client().deltaStatus();
  t.is(st.code, grpc.status.UNIMPLEMENTED);
  t.regex(st.details, /DeltaSecrets .* not implemented; configure Envoy for state-of-the-world SDS/);
});

test('one push reaches every stream subscribed to the secret, in one pass', async (t) => {
  const s = await startTestServer(t);
  const clients = Array.from({ length: 5 }, () => s.client());
  const watches = clients.flatMap((c) => Array.from({ length: 20 }, () => c.subscribe('default')));
  await Promise.all(watches.map((w) => w.waitFor(() => true)));
  const svid = s.source.rotate();
  const got = await Promise.all(watches.map((w) => w.waitFor((r) => r.version === svid.version)));
  t.true(got.every((g) => g.secret.tlsCertificate?.certificateChain === svid.certChainPem));
  const push = s.metrics.pushes.at(-1)!;
  t.deepEqual(push, { kind: 'workload', streams: 100 });
  t.is(s.metrics.pushes.filter((p) => p.kind === 'workload').length, 1, 'one pass for one change');
});

test('streams that go away release everything they held; close releases the source', async (t) => {
  const s = await startTestServer(t);
  const c1 = s.client();
  const c2 = s.client();
  const ws = [c1.subscribe('default'), c1.subscribe('ROOTCA'), c2.subscribe('default'), c2.subscribe('spiffe://example.org')];
  await Promise.all(ws.map((w) => w.nextUpdate()));
  t.like(s.server.usage(), { streams: 4, feeds: 3, subscribers: 4 });
  t.is(s.source.listenerCount(), 1);

  c1.close(); // cancel
  await eventually(() => s.server.streams() === 2, WAIT_MS, 'cancelled streams to be released');
  t.like(s.server.usage(), { feeds: 2, subscribers: 2 });

  const raw = new RawStream(c2);
  raw.send({ resource_names: ['default'], type_url: SECRET_TYPE_URL });
  await raw.next();
  raw.end(); // half-close, as a client ending cleanly
  await eventually(() => s.server.streams() === 2, WAIT_MS, 'the half-closed stream to be released');

  c2.close();
  await eventually(() => s.server.streams() === 0, WAIT_MS, 'all streams to be released');
  t.like(s.server.usage(), { streams: 0, feeds: 0, subscribers: 0, fileWatches: 0, pendingFetches: 0 });
  t.is(s.metrics.opened, s.metrics.closed);

  await s.server.close();
  t.is(s.source.listenerCount(), 0);
  t.false(s.server.serving());
});

test('close ends open streams with UNAVAILABLE', async (t) => {
  const s = await startTestServer(t);
  const w = s.client({ reconnect: false }).subscribe('default');
  await w.nextUpdate();
  const status = w.nextStatus();
  await s.server.close();
  const st = await status;
  t.is(st.code, grpc.status.UNAVAILABLE);
  t.regex(st.details, /shutting down/);
});

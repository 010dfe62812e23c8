/**
 * The agent end to end against the real reference CA, in-process, on one FakeClock: first SVID,
 * readiness, SDS delivery, rotation over mTLS, CA outages, and SDS clients that come and go
 * around rotations. Time moves only through the FakeClock; the gRPC and TLS I/O is real.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { certificatesToPem } from '../../src/identity/certificate.js';
import type { ReceivedSecret, SecretWatch } from '../helpers/sds-client.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { chainOf, eventually, ORDERS, ORDERS_TOKEN, Stand } from './stand.js';

const CERT_ISSUED = 'certificate_issued';
const RETRYING = 'could not obtain an SVID from the CA; will retry';

/** The served chain and key, checked as Envoy and a TLS peer would use them. */
function checkServedSvid(t: ExecutionContext, s: Stand, secret: ReceivedSecret, rootsPem: string): crypto.X509Certificate {
  const tlsCert = secret.secret.tlsCertificate;
  if (!tlsCert) throw new Error('default is not a tls_certificate');
  const [leaf, ...rest] = chainOf(tlsCert.certificateChain);
  t.deepEqual(leaf!.sans, [{ type: 'uri', value: ORDERS }]);
  t.is(leaf!.serial, secret.version, 'the SDS version is the leaf serial');
  const x509 = new crypto.X509Certificate(tlsCert.certificateChain);
  t.true(x509.checkPrivateKey(crypto.createPrivateKey(tlsCert.privateKey)), 'the served key belongs to the served certificate');
  const verified = opensslVerify(tempDir(t), {
    roots: rootsPem,
    leaf: x509.toString(),
    ...(rest.length ? { intermediates: certificatesToPem(rest) } : {}),
    atTime: new Date(s.clock.now()),
  });
  t.true(verified.ok, verified.output);
  return x509;
}

test('happy path: the SVID from the CA, /readyz 503 then 200, default and ROOTCA over SDS verified by openssl, a rotation over mTLS pushed', async (t) => {
  // The projected token is not there yet when the agent starts: it runs, cannot get an SVID, is not ready.
  const s = await Stand.start(t, { tokenPresent: false, renewFraction: 0.25 });
  await s.settled();
  t.is(s.status().lastFailure?.kind, 'token_unreadable');
  const notReady = await s.admin('/readyz');
  t.is(notReady.status, 503);
  t.deepEqual(JSON.parse(notReady.body), { ready: false, checks: { svid: false, sds: true }, pid: process.pid });
  t.is((await s.admin('/healthz')).status, 200);

  const envoy = s.sdsClient();
  const workload = envoy.subscribe('default');
  const roots = envoy.subscribe('ROOTCA');

  // The token appears; the next retry (fake time) gets the first SVID with it.
  fs.writeFileSync(s.tokenFile, `${ORDERS_TOKEN}\n`);
  const first = await s.nextAttempt();
  t.true(first.ok);
  const ready = await s.admin('/readyz');
  t.is(ready.status, 200);
  t.deepEqual(JSON.parse(ready.body), { ready: true, checks: { svid: true, sds: true }, pid: process.pid });

  const [w1, r1] = await Promise.all([workload.waitFor(() => true), roots.waitFor(() => true)]);
  const bundlePem = s.ca!.bundlePem;
  t.deepEqual(chainOf(r1.secret.validationContext!.trustedCa).map((c) => c.serial), chainOf(bundlePem).map((c) => c.serial), 'ROOTCA is the CA root');
  const cert1 = checkServedSvid(t, s, w1, r1.secret.validationContext!.trustedCa);
  t.like(s.caLogs().find((l) => l.event === CERT_ISSUED), { identity: ORDERS, auth: 'static-token', serial: w1.version });

  // Rotation: at a quarter of the lifetime counted from receipt (jitter 0), with a fresh key, over mTLS.
  const expectedRenewal = Math.round(first.at + 0.25 * (Date.parse(cert1.validTo) - first.at));
  const rotation = await s.nextAttempt();
  t.true(rotation.ok);
  t.is(rotation.at, expectedRenewal);
  const w2 = await workload.waitFor((x) => x.version !== w1.version);
  const cert2 = checkServedSvid(t, s, w2, r1.secret.validationContext!.trustedCa);
  t.not(cert2.serialNumber, cert1.serialNumber);
  t.not(w2.secret.tlsCertificate!.privateKey, w1.secret.tlsCertificate!.privateKey, 'a fresh key');
  t.not(cert2.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'), cert1.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'));
  const issued = s.caLogs().filter((l) => l.event === CERT_ISSUED);
  t.like(issued.at(-1), { identity: ORDERS, auth: 'mtls', serial: w2.version }, 'the CA authenticated the renewal by the current SVID');
  t.like(s.agentLogs().find((l) => l.msg === 'SVID renewed'), { auth: 'mtls', serial: w2.version, previousSerial: w1.version });
  t.deepEqual([workload.nacks, roots.nacks, workload.protocolErrors, roots.protocolErrors], [[], [], [], []]);
  t.is(roots.latest()?.version, r1.version, 'the bundle did not change, so ROOTCA was not resent');
  t.is(roots.accepted, 1);
});

test('CA down at agent start: not ready, retries with backoff, ready as soon as the next retry after the CA comes up', async (t) => {
  const s = await Stand.start(t, { caUp: false });
  await s.settled();
  t.like(s.status(), { ready: false, consecutiveFailures: 1, lastFailure: { kind: 'unavailable' } });
  t.regex(s.status().lastFailure!.message, /ECONNREFUSED|No connection established/);
  t.is((await s.admin('/readyz')).status, 503);

  const second = await s.nextAttempt();
  t.false(second.ok);
  t.is(second.status.consecutiveFailures, 2);
  t.is((await s.admin('/readyz')).status, 503);
  // Every failure is logged with the CA's error and when the next try comes.
  const failures = s.agentLogs().filter((l) => l.msg === RETRYING);
  t.is(failures.length, 2);
  for (const [i, l] of failures.entries()) t.like(l, { level: 'warn', kind: 'unavailable', auth: 'token', consecutiveFailures: i + 1, serving: false });
  t.true(failures.every((l) => typeof l.retryInMs === 'number' && typeof l.error === 'string' && (l.error as string).includes(`127.0.0.1:${s.caPort}`)));

  // The CA comes up on the same port with the same state: the very next retry succeeds.
  const ca = await s.startCa();
  t.like(s.caLogs().filter((l) => l.event === 'state_loaded').at(-1), { created: false });
  const scheduled = s.status().nextAttemptAt!;
  const third = await s.nextAttempt();
  t.true(third.ok, third.status.lastFailure?.message);
  t.is(third.at, scheduled);
  t.is(s.clock.now(), scheduled, 'no further time passed');
  t.is((await s.admin('/readyz')).status, 200);
  const envoy = s.sdsClient();
  const roots = await envoy.subscribe('ROOTCA').waitFor(() => true);
  t.is(roots.secret.validationContext!.trustedCa.trim(), ca.bundlePem.trim());
});

test('CA down for longer than one renewal interval: the old SVID stays served and ready, renewed before expiry when the CA returns', async (t) => {
  // Lifetime 60 s, renewal at 10 % (6 s): the CA stays away for over 20 s, more than three renewal intervals.
  const s = await Stand.start(t, { renewFraction: 0.1 });
  const svid1 = await s.agent.manager.firstSvid();
  const issuedAt = s.clock.now();
  const early = s.sdsClient().subscribe('default');
  await early.waitFor((x) => x.version === svid1.version);
  await s.stopCa();

  const failed: number[] = [];
  while (s.status().nextAttemptAt! < issuedAt + 20_000) {
    const r = await s.nextAttempt();
    t.false(r.ok);
    failed.push(r.at);
    t.is(r.status.lastFailure?.kind, 'unavailable');
    t.is(s.servedVersion(), svid1.version, 'the current SVID is kept');
  }
  t.true(failed.length >= 2, `${failed.length} failed attempts`);
  t.is(failed[0], Math.round(issuedAt + 0.1 * (svid1.expiresAt - issuedAt)), 'the first failure is the scheduled renewal');
  for (const [i, at] of failed.entries()) if (i > 0) t.true(at > failed[i - 1]!, 'retries move forward');
  // Still down right up to the next attempt.
  const next = s.status().nextAttemptAt!;
  await s.clock.advance(next - 1 - s.clock.now());
  t.true(s.clock.now() - issuedAt > 3 * 6_000);
  t.is(s.status().consecutiveFailures, failed.length, 'no attempt while waiting');

  t.true(s.agent.ready());
  t.is((await s.admin('/readyz')).status, 200);
  const late = await s.sdsClient().subscribe('default').waitFor(() => true);
  t.is(late.version, svid1.version, 'a new SDS client gets the old SVID');
  t.is(early.accepted, 1, 'nothing was pushed during the outage');
  const warnings = s.agentLogs().filter((l) => l.msg === RETRYING);
  t.is(warnings.length, failed.length);
  t.true(warnings.every((l) => l.servingUntil === new Date(svid1.expiresAt).toISOString()));

  await s.startCa();
  const renewed = await s.nextAttempt();
  t.true(renewed.ok, renewed.status.lastFailure?.message);
  t.is(renewed.at, next);
  t.true(renewed.at < svid1.expiresAt, 'renewed before the old SVID expired');
  const pushed = await early.waitFor((x) => x.version !== svid1.version);
  t.is(pushed.version, s.servedVersion()!);
  t.like(s.agentLogs().find((l) => l.msg === 'SVID renewed'), { auth: 'mtls', previousSerial: svid1.version });
  t.like(s.caLogs().filter((l) => l.event === CERT_ISSUED).at(-1), { auth: 'mtls', serial: pushed.version });
});

test('SDS clients breaking and reconnecting around rotations all end on the newest SVID, with no NACK or protocol error', async (t) => {
  const s = await Stand.start(t, { renewFraction: 0.1 });
  await s.agent.manager.firstSvid();
  const clients = Array.from({ length: 8 }, () => s.sdsClient());
  const watches = clients.map((c) => c.subscribe('default'));
  await Promise.all(watches.map((w) => w.waitFor(() => true)));
  t.is(s.agent.sds.streams(), 8);

  const before = watches.slice(0, 2); // break just before the rotation
  const during = watches.slice(2, 4); // break while the rotation is pushed
  const after = watches.slice(4, 6); // break just after
  const steady = watches.slice(6); // never break
  const expectOpened = new Map<SecretWatch, number>(watches.map((w) => [w, 1]));
  const brk = (ws: SecretWatch[]) => {
    for (const w of ws) {
      w.breakStream();
      expectOpened.set(w, expectOpened.get(w)! + 1);
    }
  };
  for (let round = 1; round <= 2; round++) {
    brk(before);
    // The SDS server subscribed to the manager first, so this runs right after the push went out.
    const unsubscribe = s.agent.manager.subscribe(() => brk(during));
    const r = await s.nextAttempt();
    unsubscribe();
    t.true(r.ok);
    brk(after);
    const newest = s.servedVersion()!;
    await Promise.all(watches.map((w) => eventually(() => w.streamsOpened === expectOpened.get(w) && w.latest()?.version === newest, 5000, `round ${round}: every client on ${newest}`)));
    for (const w of steady) t.is(w.accepted, round + 1, 'a steady client gets each SVID once');
  }

  // Two clients go away for good; the server lets their streams go.
  clients[6]!.close();
  clients[7]!.close();
  await eventually(() => s.agent.sds.streams() === 6, 5000, 'the stream count to drop to the live clients');
  t.is(s.agent.sds.usage().streams, 6);
  t.is((await s.agent.metrics.sdsStreams.get()).values[0]?.value, 6, 'the streams gauge agrees');

  for (const w of watches) {
    t.deepEqual(w.nacks, []);
    t.deepEqual(w.protocolErrors, []);
    // Every stream that ended was cancelled by its client: the server never failed one.
    t.true(w.statuses.every((st) => st.code === grpcStatus.CANCELLED), JSON.stringify(w.statuses));
  }
  const sdsTrouble = s.agentLogs().filter((l) => l.component === 'sds' && (l.level === 'warn' || l.level === 'error'));
  t.deepEqual(sdsTrouble, []);
  t.is((await s.agent.metrics.sdsNacks.get()).values.length, 0);
  t.is((await s.agent.metrics.sdsRejected.get()).values.length, 0);
});

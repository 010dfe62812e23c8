import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import test from 'ava';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MeshidError } from '../../src/lib/errors.js';
import type { SvidMetrics } from '../../src/rotation/metrics.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { advanceUntil, harness, HOUR, ID, MINUTE, seededRandom, started, TOKEN, TOKEN_2 } from './harness.js';
import { fingerprint, InProcessSigner } from './in-process-signer.js';

const keyFingerprintOf = (privateKeyPem: string) => fingerprint(createPublicKey(createPrivateKey(privateKeyPem)));

test('first issuance: local key, CSR for our ID, token auth; the SVID and bundle verify with openssl', async (t) => {
  const h = harness(t);
  t.false(h.manager.ready());
  t.is(h.manager.currentSvid(), undefined);
  t.is(h.manager.currentBundle(), undefined);
  const svid = await started(h);

  t.true(h.manager.ready());
  t.is(h.manager.currentSvid(), svid);
  t.is(svid.spiffeId, ID);
  t.is(h.signer.requests.length, 1);
  t.like(h.signer.requests[0], { auth: 'token', token: TOKEN, callerId: ID, csrId: ID, outcome: 'issued', serial: svid.version });
  t.is(h.signer.requests[0]!.keyFingerprint, keyFingerprintOf(svid.privateKeyPem), 'the CSR carried the key we now serve');
  t.is(h.tokenReads(), 1);

  const leaf = new X509Certificate(svid.certChainPem);
  t.true(leaf.checkPrivateKey(createPrivateKey(svid.privateKeyPem)));
  t.is(svid.expiresAt, Date.parse(leaf.validTo));
  t.is(parseCertificatesPem(svid.certChainPem, 'chain').length, 1, 'the root is not in the served chain');
  const bundle = h.manager.currentBundle();
  t.is(bundle?.trustDomain, 'example.org');
  t.is(bundle?.rootsPem, h.signer.root.pem);
  const r = opensslVerify(tempDir(t), { roots: bundle!.rootsPem, leaf: svid.certChainPem, atTime: new Date(h.clock.now()), purpose: 'sslserver' });
  t.true(r.ok, r.output);

  t.deepEqual(h.notifications, [h.clock.now()]);
  const status = h.manager.status();
  t.like(status, { ready: true, spiffeId: ID, expiresAt: svid.expiresAt, requestInFlight: false, consecutiveFailures: 0 });
  const notBefore = Date.parse(leaf.validFrom);
  const lifetime = svid.expiresAt - notBefore;
  t.true(status.nextAttemptAt! >= notBefore + 0.4 * lifetime && status.nextAttemptAt! <= notBefore + 0.6 * lifetime);
  t.truthy(h.logs.find((l) => l.msg === 'SVID issued' && l['serial'] === svid.version && l['auth'] === 'token'));
});

test('renewal happens at the chosen time, with a fresh key, over mTLS with the current SVID', async (t) => {
  const h = harness(t);
  const first = await started(h);
  for (let round = 1; round <= 3; round++) {
    const before = h.manager.currentSvid()!;
    const renewAt = h.manager.status().nextAttemptAt!;
    await h.clock.advance(renewAt - h.clock.now() - 1);
    t.is(h.signer.requests.length, round, 'nothing before the renewal time');
    t.is(h.manager.currentSvid(), before);
    await h.clock.advance(1);
    t.is(h.signer.requests.length, round + 1);
    const req = h.signer.requests[round]!;
    t.like(req, { at: renewAt, auth: 'mtls', callerId: ID, outcome: 'issued' });
    const after = h.manager.currentSvid()!;
    t.not(after.version, before.version);
    t.is(req.keyFingerprint, keyFingerprintOf(after.privateKeyPem));
    t.not(req.keyFingerprint, keyFingerprintOf(before.privateKeyPem), 'a fresh key for every renewal');
    t.is(h.notifications.length, round + 1);
  }
  t.is(h.tokenReads(), 1, 'renewals over mTLS never read the token');
  t.not(h.manager.currentSvid()!.version, first.version);
});

test('renewal falls back to the token when the SVID is too close to expiry for mTLS', async (t) => {
  // Renewing at 90 % leaves 6 minutes; the margin (45 minutes, capped at a quarter of the 1 h
  // lifetime: 15 minutes) does not fit in them.
  const h = harness(t, { manager: { policy: { mtlsMarginMs: 45 * MINUTE, renewal: { renewFraction: 0.9, jitterFraction: 0 } } } });
  await started(h);
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, HOUR);
  t.like(h.signer.requests[1], { auth: 'token', token: TOKEN, outcome: 'issued' });
  t.is(h.tokenReads(), 2);
});

test('a CA that refuses our SVID over mTLS gets the token on the next attempt', async (t) => {
  const h = harness(t);
  const first = await started(h);
  h.signer.mode = { kind: 'refuse-mtls' };
  await advanceUntil(h.clock, () => h.manager.currentSvid()?.version !== first.version, HOUR);
  t.deepEqual(
    h.signer.requests.map((r) => [r.auth, r.outcome]),
    [
      ['token', 'issued'],
      ['mtls', 'permission_denied'],
      ['token', 'issued'],
    ],
  );
  // Success clears the refusal: the next renewal tries mTLS again.
  h.signer.mode = { kind: 'ok' };
  await advanceUntil(h.clock, () => h.signer.requests.length === 4, HOUR);
  t.is(h.signer.requests[3]!.auth, 'mtls');
});

test('the token is read afresh for every token-authenticated request', async (t) => {
  const h = harness(t);
  h.signer.mode = { kind: 'fail', error: 'unavailable' };
  h.manager.start();
  await h.clock.advance(0);
  h.setToken(TOKEN_2);
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, 10_000);
  h.setToken(TOKEN);
  h.signer.mode = { kind: 'ok' };
  await advanceUntil(h.clock, () => h.manager.ready(), 10_000);
  t.deepEqual(
    h.signer.requests.map((r) => r.token),
    [TOKEN, TOKEN_2, TOKEN],
  );
  t.is(h.tokenReads(), 3);
});

test('an unreadable or empty token is a logged failure that is retried, and reaches no CA', async (t) => {
  const h = harness(t);
  h.setToken(new Error('ENOENT: /var/run/secrets/tokens/istio-token'));
  h.manager.start();
  await h.clock.advance(0);
  h.setToken('  \n');
  await advanceUntil(h.clock, () => h.tokenReads() === 2, 10_000);
  t.is(h.signer.requests.length, 0);
  const failures = h.logs.filter((l) => l.msg?.startsWith('could not obtain'));
  t.like(failures[0], { level: 'warn', kind: 'token_unreadable', code: 'token_unreadable' });
  t.regex(String(failures[0]!['error']), /ENOENT/);
  t.like(failures[1], { kind: 'token_unreadable', code: 'token_empty' });
  h.setToken(TOKEN);
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 10_000));
});

test('the validity asked for and the key algorithm are honoured', async (t) => {
  const h = harness(t, { manager: { ttlSeconds: 600, keyAlgorithm: 'ec-p384' } });
  const svid = await started(h);
  t.is(h.signer.requests[0]!.validitySeconds, 600);
  const key = createPrivateKey(svid.privateKeyPem);
  t.is(key.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  const leaf = new X509Certificate(svid.certChainPem);
  t.is(Date.parse(leaf.validTo) - h.clock.now(), 600_000);
});

test('through an intermediate: the chain served is leaf + intermediate, the bundle holds only the root', async (t) => {
  const h = harness(t, { signer: { intermediate: true } });
  const svid = await started(h);
  const chain = parseCertificatesPem(svid.certChainPem, 'chain');
  t.is(chain.length, 2);
  t.is(chain[1]!.basicConstraints?.ca, true);
  t.is(h.manager.currentBundle()?.rootsPem, h.signer.root.pem);
  const r = opensslVerify(tempDir(t), {
    roots: h.manager.currentBundle()!.rootsPem,
    leaf: svid.certChainPem,
    intermediates: svid.certChainPem,
    atTime: new Date(h.clock.now()),
  });
  t.true(r.ok, r.output);
});

test('stop() cancels every timer, abandons the request in flight, and rejects firstSvid', async (t) => {
  const h = harness(t);
  h.signer.mode = { kind: 'hang-forever' };
  h.manager.start();
  await h.clock.advance(0);
  t.true(h.manager.status().requestInFlight);
  t.is(h.clock.pendingCount(), 2, 'the wake-up timer and the attempt deadline');
  h.manager.stop();
  t.is(h.clock.pendingCount(), 0);
  const e = await t.throwsAsync(h.manager.firstSvid(), { instanceOf: MeshidError });
  t.is(e?.code, 'svid_manager_stopped');
  h.signer.mode = { kind: 'ok' };
  await h.clock.advance(2 * HOUR);
  t.is(h.signer.requests.length, 1, 'no request after stop');
  t.is(h.notifications.length, 0);
});

test('stop() after the first SVID, and while waiting out a backoff, leaves no armed timers', async (t) => {
  const ready = harness(t);
  await started(ready);
  t.true(ready.clock.pendingCount() > 0);
  ready.manager.stop();
  t.is(ready.clock.pendingCount(), 0);
  await ready.manager.firstSvid(); // stays resolved

  const backingOff = harness(t);
  backingOff.signer.mode = { kind: 'fail', error: 'unavailable' };
  backingOff.manager.start();
  await backingOff.clock.advance(0);
  t.is(backingOff.manager.status().consecutiveFailures, 1);
  backingOff.manager.stop();
  t.is(backingOff.clock.pendingCount(), 0);
  backingOff.manager.stop(); // idempotent
});

test('metrics hooks see rotations by auth kind, failures by kind, latency, and expiry', async (t) => {
  const calls: string[] = [];
  const metrics: SvidMetrics = {
    rotated: (auth) => calls.push(`rotated:${auth}`),
    rotationFailed: (kind) => calls.push(`failed:${kind}`),
    caRequest: (ms, code) => calls.push(`latency:${ms >= 0}:${code}`),
    expiry: (at) => calls.push(`expiry:${at === undefined ? 'none' : 'set'}`),
  };
  const h = harness(t, { manager: { metrics } });
  const svid = await started(h);
  h.signer.mode = { kind: 'fail', error: 'unavailable' };
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, HOUR);
  await h.clock.advance(svid.expiresAt - h.clock.now());
  h.signer.mode = { kind: 'ok' };
  await advanceUntil(h.clock, () => h.manager.ready(), 2 * MINUTE);
  const distinct = [...new Set(calls)];
  t.deepEqual(distinct, ['latency:true:0', 'rotated:token', 'expiry:set', 'latency:true:14', 'failed:unavailable', 'expiry:none']);
  t.is(calls.filter((c) => c === 'rotated:token').length, 2, 'first issuance, then recovery after expiry');
});

test('logs carry the CA error but never the token or a private key', async (t) => {
  const h = harness(t);
  h.setToken('s3cr3t-unknown-token');
  h.manager.start();
  await h.clock.advance(0);
  h.setToken(TOKEN);
  await advanceUntil(h.clock, () => h.manager.ready(), 10_000);
  await advanceUntil(h.clock, () => h.signer.requests.length === 3, HOUR); // an mTLS renewal
  const failure = h.logs.find((l) => l.msg?.startsWith('could not obtain'));
  t.like(failure, { level: 'warn', kind: 'unauthenticated', grpcCode: 16, error: 'test CA: unknown bearer token', auth: 'token', serving: false });
  const all = h.rawLogs.join('');
  const svid = h.manager.currentSvid()!;
  for (const secret of ['s3cr3t', 'PRIVATE KEY', svid.privateKeyPem.split('\n')[1]!]) t.false(all.includes(secret), `logs contain ${secret}`);
});

test('a fleet issued at the same instant does not renew in step', async (t) => {
  const clock = new FakeClock();
  const signer = new InProcessSigner(clock, { tokens: { [TOKEN]: ID } });
  const fleet = Array.from({ length: 20 }, (_, i) => harness(t, { clock, signerInstance: signer, manager: { random: seededRandom(1000 + i) } }));
  await Promise.all(fleet.map((h) => started(h)));
  const issuedAt = clock.now();
  await clock.advance(40 * MINUTE);
  const renewals = signer.requestsBy('mtls').map((r) => r.at - issuedAt);
  t.is(renewals.length, 20);
  const lifetime = HOUR + 10_000; // 10 s back-dating
  for (const d of renewals) t.true(d >= 0.4 * lifetime - 10_000 && d <= 0.6 * lifetime - 10_000, `renewed ${d} ms in`);
  t.is(new Set(renewals.map((d) => Math.floor(d / 1000))).size, 20, 'no two agents renew in the same second');
  t.true(Math.max(...renewals) - Math.min(...renewals) > 0.1 * lifetime, 'the fleet spreads over more than 10 % of the lifetime');
});

test('subscribers: one that throws does not stop the others; unsubscribe works', async (t) => {
  const h = harness(t);
  let seen = 0;
  h.manager.subscribe(() => {
    throw new Error('boom');
  });
  const off = h.manager.subscribe(() => seen++);
  await started(h);
  t.is(seen, 1);
  off();
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, HOUR);
  t.is(seen, 1);
  t.is(h.notifications.length, 2);
  t.truthy(h.logs.find((l) => l.msg === 'an SVID subscriber threw' && l['error'] === 'boom'));
});

test('stop() while the token is being read: no request goes out afterwards and no timer is left', async (t) => {
  let release: ((token: string) => void) | undefined;
  const h = harness(t, { manager: { token: () => new Promise<string>((resolve) => (release = resolve)) } });
  h.manager.start();
  await h.clock.advance(0);
  t.truthy(release, 'the token read is pending');
  h.manager.stop();
  release!(TOKEN);
  await h.clock.advance(0);
  t.is(h.signer.requests.length, 0);
  t.is(h.clock.pendingCount(), 0);
});

test('renewNow renews at once with a fresh key, and is refused while a request is in flight', async (t) => {
  const h = harness(t);
  const first = await started(h);
  const scheduled = h.manager.status().nextAttemptAt!;
  t.true(h.manager.renewNow());
  t.false(h.manager.renewNow(), 'a request is already in flight');
  await advanceUntil(h.clock, () => h.manager.currentSvid() !== first, 1000);
  const second = h.manager.currentSvid()!;
  t.not(second.version, first.version);
  t.not(keyFingerprintOf(second.privateKeyPem), keyFingerprintOf(first.privateKeyPem));
  t.is(h.signer.requests.length, 2);
  t.like(h.signer.requests[1], { auth: 'mtls', outcome: 'issued' });
  t.true(h.signer.requests[1]!.at < scheduled, 'earlier than the scheduled renewal');
  t.true(h.manager.status().nextAttemptAt! > h.clock.now(), 'the next renewal is scheduled from the new SVID');
  h.manager.stop();
  t.false(h.manager.renewNow());
});

test('a short-lived, back-dated SVID (1 min, notBefore 1 min early) renews at half of its usable life, over mTLS', async (t) => {
  const h = harness(t, { signer: { ttlMs: MINUTE, backdateMs: MINUTE }, manager: { policy: { renewal: { jitterFraction: 0 } } } });
  const first = await started(h);
  t.is(h.manager.status().nextAttemptAt, h.clock.now() + 30_000, 'half of the minute it is usable, not of the two minutes since notBefore');
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, MINUTE);
  t.like(h.signer.requests[1], { auth: 'mtls', outcome: 'issued' }, 'the 60 s mTLS margin is capped at a quarter of the lifetime');
  t.not(h.manager.currentSvid()!.version, first.version);
});

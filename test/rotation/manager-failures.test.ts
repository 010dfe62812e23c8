import test from 'ava';
import type { CaResult } from '../../src/rotation/ca-signer.js';
import { advanceUntil, harness, HOUR, ID, MINUTE, started } from './harness.js';
import type { SignerMode } from './in-process-signer.js';

const failureLogs = (h: ReturnType<typeof harness>) => h.logs.filter((l) => l.msg === 'could not obtain an SVID from the CA; will retry');

test('CA down at start: not ready, retries with growing full-jitter delays capped at 60 s, ready as soon as it is back', async (t) => {
  // A constant draw makes each delay exactly 0.9 x its window: 1, 2, 4, ... s, capped at 60 s.
  const h = harness(t, { manager: { random: () => 0.9 } });
  h.signer.mode = { kind: 'fail', error: 'unavailable', message: 'connect ECONNREFUSED 127.0.0.1:15012' };
  h.manager.start();
  await h.clock.advance(0);
  for (let n = 2; n <= 9; n++) {
    await advanceUntil(h.clock, () => h.signer.requests.length === n, 2 * MINUTE);
    t.false(h.manager.ready());
    t.is(h.manager.currentSvid(), undefined);
  }
  const at = h.signer.requests.map((r) => r.at);
  const delays = at.slice(1).map((x, i) => x - at[i]!);
  t.deepEqual(delays, [900, 1800, 3600, 7200, 14400, 28800, 54000, 54000]);
  const logged = failureLogs(h);
  t.is(logged.length, 9, 'every failure is logged');
  t.like(logged[0], { level: 'warn', kind: 'unavailable', grpcCode: 14, error: 'connect ECONNREFUSED 127.0.0.1:15012', serving: false, retryInMs: 900, consecutiveFailures: 1 });
  t.like(h.manager.status(), { ready: false, consecutiveFailures: 9, lastFailure: { kind: 'unavailable' } });

  h.signer.mode = { kind: 'ok' };
  const backAt = h.clock.now();
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 2 * MINUTE));
  t.true(h.clock.now() - backAt <= 54_000, 'ready on the first retry after the CA came back');
  t.is((await h.manager.firstSvid()).spiffeId, ID);
  t.is(h.manager.status().consecutiveFailures, 0);
});

test('CA down at start with random draws: each delay lies inside its window, and the windows grow', async (t) => {
  const h = harness(t);
  h.signer.mode = { kind: 'fail', error: 'unavailable' };
  h.manager.start();
  await h.clock.advance(0);
  await advanceUntil(h.clock, () => h.signer.requests.length === 10, 10 * MINUTE);
  const at = h.signer.requests.map((r) => r.at);
  const delays = at.slice(1).map((x, i) => x - at[i]!);
  delays.forEach((d, i) => t.true(d >= 1 && d < Math.min(60_000, 1000 * 2 ** i), `delay ${i} = ${d}`));
  t.true(new Set(delays.map((d, i) => (d / Math.min(60_000, 1000 * 2 ** i)).toFixed(3))).size >= 8, 'the draws differ');
  t.true(delays.slice(5).reduce((a, b) => a + b) > delays.slice(0, 5).reduce((a, b) => a + b), 'later retries wait longer');
});

test('CA down for longer than one renewal interval: the old SVID is still served; renewed as soon as the CA returns, before expiry', async (t) => {
  // Renew between 30 % and 40 % of the lifetime, so a 35-minute outage spans more than one interval.
  const h = harness(t, { manager: { policy: { renewal: { renewFraction: 0.35, jitterFraction: 0.05 } } } });
  const first = await started(h);
  const issuedAt = h.clock.now();
  const renewAt = h.manager.status().nextAttemptAt!;
  h.signer.mode = { kind: 'fail', error: 'unavailable' };
  const outageEnd = first.expiresAt - 90_000;
  t.true(outageEnd - renewAt > renewAt - issuedAt, 'the outage is longer than the renewal interval');
  while (h.clock.now() < outageEnd) {
    await h.clock.advance(Math.min(20_000, outageEnd - h.clock.now()));
    t.is(h.manager.currentSvid(), first, 'the old SVID is served throughout the outage');
  }
  const during = h.signer.requests.slice(1).map((r) => r.at);
  t.true(during.length > 20, `${during.length} retries`);
  t.is(during[0], renewAt);
  during.slice(1).forEach((x, i) => t.true(x - during[i]! <= 60_000, 'retries stay within the 60 s cap'));
  t.like(failureLogs(h)[0], { kind: 'unavailable', servingUntil: new Date(first.expiresAt).toISOString() });

  h.signer.mode = { kind: 'ok' };
  t.true(await advanceUntil(h.clock, () => h.manager.currentSvid() !== first, 60_000));
  t.true(h.clock.now() < first.expiresAt, 'renewed before the old SVID expired');
  t.is(h.manager.currentSvid()!.spiffeId, ID);
  t.true(h.manager.ready());
});

test('CA down until expiry: served up to the last millisecond, withdrawn exactly at expiry with subscribers told, recovered after', async (t) => {
  const h = harness(t);
  const first = await started(h);
  h.signer.mode = { kind: 'fail', error: 'unavailable' };
  await h.clock.advance(first.expiresAt - 1 - h.clock.now());
  t.is(h.manager.currentSvid(), first);
  t.true(h.manager.ready());
  const lastChance = first.expiresAt - 30_000; // attemptTimeoutMs before expiry
  t.truthy(h.signer.requests.find((r) => r.at === lastChance), 'a retry was pulled in to start in time to finish before expiry');
  const told = h.notifications.length;

  await h.clock.advance(1);
  t.is(h.clock.now(), first.expiresAt);
  t.is(h.manager.currentSvid(), undefined);
  t.false(h.manager.ready());
  t.deepEqual(h.notifications.slice(told), [first.expiresAt], 'subscribers are told at the instant of expiry');
  t.truthy(h.logs.find((l) => l.level === 'error' && l.msg?.startsWith('the SVID expired')));

  await h.clock.advance(10 * MINUTE);
  t.is(h.manager.currentSvid(), undefined, 'never served again once expired');
  h.signer.mode = { kind: 'ok' };
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 60_000));
  t.is(h.signer.requests[h.signer.requests.length - 1]!.auth, 'token', 'an expired SVID cannot authenticate; the token does');
});

const badAnswers: Array<[string, SignerMode, string]> = [
  ['another identity', { kind: 'wrong-identity', spiffeId: 'spiffe://example.org/ns/shop/sa/admin' }, 'ca_wrong_identity'],
  ['another public key', { kind: 'wrong-key' }, 'ca_wrong_key'],
  ['garbage', { kind: 'garbage' }, 'ca_response_malformed'],
];

for (const [name, mode, code] of badAnswers) {
  test(`a CA answer with ${name} is refused, logged and retried, at start and at renewal`, async (t) => {
    const h = harness(t);
    h.signer.mode = mode;
    h.manager.start();
    await h.clock.advance(0);
    t.false(h.manager.ready());
    t.is(h.manager.currentBundle(), undefined, 'nothing from a refused answer is trusted');
    t.like(failureLogs(h)[0], { kind: 'invalid_response', code });
    h.signer.mode = { kind: 'ok' };
    t.true(await advanceUntil(h.clock, () => h.manager.ready(), 2_000));

    const good = h.manager.currentSvid()!;
    h.signer.mode = mode;
    await advanceUntil(h.clock, () => h.signer.requests.length === 3, HOUR);
    t.is(h.manager.currentSvid(), good, 'a bad renewal answer leaves the current SVID in place');
    h.signer.mode = { kind: 'ok' };
    t.true(await advanceUntil(h.clock, () => h.manager.currentSvid() !== good, 2 * MINUTE));
  });
}

test('a CA that hangs until the client deadline is a deadline_exceeded failure, retried', async (t) => {
  const h = harness(t, { signer: { deadlineMs: 10_000 } });
  h.signer.mode = { kind: 'hang' };
  h.manager.start();
  await h.clock.advance(10_000);
  t.like(failureLogs(h)[0], { kind: 'deadline_exceeded', grpcCode: 4 });
  h.signer.mode = { kind: 'ok' };
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 2_000));
});

test('a call that never returns is abandoned after attemptTimeoutMs, and retried', async (t) => {
  const h = harness(t, { manager: { policy: { retry: { attemptTimeoutMs: 20_000 } } } });
  h.signer.mode = { kind: 'hang-forever' };
  h.manager.start();
  await h.clock.advance(19_999);
  t.is(failureLogs(h).length, 0);
  await h.clock.advance(1);
  t.like(failureLogs(h)[0], { kind: 'deadline_exceeded', error: 'no answer from the CA within 20000 ms' });
  h.signer.mode = { kind: 'ok' };
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 2_000));
  t.is(h.signer.requests.length, 2);
});

test('a clock jump past the renewal time (suspend) is noticed by the watchdog within its period', async (t) => {
  const h = harness(t);
  const first = await started(h);
  const renewAt = h.manager.status().nextAttemptAt!;
  h.clock.jump(renewAt + 5 * MINUTE - h.clock.now());
  const wokeAt = h.clock.now();
  t.is(h.signer.requests.length, 1, 'the jump itself fires no timer');
  t.is(h.manager.currentSvid(), first, 'still valid after the jump');
  await h.clock.advance(10_000);
  t.is(h.signer.requests.length, 2);
  const renewal = h.signer.requests[1]!;
  t.true(renewal.at >= wokeAt && renewal.at <= wokeAt + 10_000, `renewed ${renewal.at - wokeAt} ms after waking`);
  t.like(renewal, { auth: 'mtls', outcome: 'issued' });
  t.not(h.manager.currentSvid(), first);
  t.truthy(h.logs.find((l) => l.msg === 'renewing the SVID' && Number(l['lateByMs']) >= 5 * MINUTE));
});

test('a suspend past expiry: the SVID is withdrawn at once by the wall clock, subscribers told, and renewed by token', async (t) => {
  const h = harness(t);
  const first = await started(h);
  h.clock.jump(2 * HOUR);
  t.is(h.manager.currentSvid(), undefined, 'currentSvid reads the wall clock, not a timer');
  t.false(h.manager.ready());
  const told = h.notifications.length;
  await h.clock.advance(10_000);
  t.true(h.notifications.length >= told + 2, 'told of the expiry, then of the new SVID');
  const renewed = h.manager.currentSvid();
  t.truthy(renewed);
  t.not(renewed, first);
  t.is(h.signer.requests[1]!.auth, 'token');
});

test('the next wake-up is never further away than the watchdog period, whatever is scheduled', async (t) => {
  const h = harness(t, { manager: { watchdogMs: 2_000 } });
  await started(h);
  t.true(h.manager.status().nextAttemptAt! - h.clock.now() > 20 * MINUTE);
  for (let i = 0; i < 5; i++) {
    t.is(h.clock.nextDue()! - h.clock.now(), 2_000);
    await h.clock.advance(2_000);
  }
  h.clock.jump(50 * MINUTE);
  await h.clock.advance(2_000);
  t.is(h.signer.requests.length, 2, 'renewed on the first wake-up after the jump');
});

test('an answer arriving after our deadline is ignored and does not disturb the next attempt', async (t) => {
  const h = harness(t, { manager: { policy: { retry: { attemptTimeoutMs: 5_000 } } } });
  let answerLate: ((r: CaResult) => void) | undefined;
  const real = h.signer.createCertificate.bind(h.signer);
  let calls = 0;
  h.signer.createCertificate = (csr, auth, ttl) => {
    calls++;
    if (calls === 1) return new Promise((resolve) => (answerLate = resolve));
    if (calls === 2) return new Promise(() => {}); // the retry hangs too
    return real(csr, auth, ttl);
  };
  h.manager.start();
  await advanceUntil(h.clock, () => calls === 2, 10_000);
  t.like(failureLogs(h)[0], { kind: 'deadline_exceeded' });
  answerLate!({ ok: false, kind: 'unavailable', grpcCode: 14, message: 'late' });
  await h.clock.advance(0);
  t.is(failureLogs(h).length, 1, 'the late answer is not counted as a second outcome');
  t.true(h.manager.status().requestInFlight);
  h.manager.stop();
  t.is(h.clock.pendingCount(), 0, 'stop() still cancels the deadline of the attempt in flight');
});

test('metrics hooks may be class methods, and one that throws does not break rotation', async (t) => {
  class Counting {
    rotations = 0;
    rotated(): void {
      this.rotations++;
      throw new Error('registry closed');
    }
  }
  const m = new Counting();
  const h = harness(t, { manager: { metrics: m } });
  await started(h);
  await advanceUntil(h.clock, () => h.signer.requests.length === 2, HOUR);
  t.is(m.rotations, 2);
  t.true(h.manager.ready());
  t.truthy(h.logs.find((l) => l.msg === 'a metrics hook threw' && l['hook'] === 'rotated'));
});

test("a CA that sheds with a retry hint is not retried before the hint (the first window alone would retry within 1 s)", async (t) => {
  const h = harness(t);
  const real = h.signer.createCertificate.bind(h.signer);
  let calls = 0;
  const at: number[] = [];
  h.signer.createCertificate = (csr, auth, ttl) => {
    calls++;
    at.push(h.clock.now());
    if (calls <= 2) return Promise.resolve({ ok: false, kind: 'resource_exhausted', grpcCode: 8, message: 'busy', retryAfterMs: 20_000 });
    return real(csr, auth, ttl);
  };
  h.manager.start();
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 2 * MINUTE));
  t.is(calls, 3);
  t.true(at[1]! - at[0]! >= 20_000 && at[1]! - at[0]! <= 30_000, `second attempt ${at[1]! - at[0]!} ms after the first`);
  t.true(at[2]! - at[1]! >= 20_000, `third attempt ${at[2]! - at[1]!} ms after the second`);
  t.like(failureLogs(h)[0], { kind: 'resource_exhausted', caRetryHintMs: 20_000 });
});

/** Issuance limits: a per-identity budget and a global concurrency limit, refused with RESOURCE_EXHAUSTED and a retry hint. */
import test from 'ava';
import { Metadata, status } from '@grpc/grpc-js';
import { MAX_PUSHBACK_MS, pushbackOf } from '../../src/ca/client.js';
import { IssuanceLimits } from '../../src/ca/limits.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { BACKEND, csrFor, FRONTEND, serviceAccountToken, STATIC_TOKEN, startHarness } from './harness.js';

const token = { kind: 'token' as const, token: STATIC_TOKEN };

test('the per-identity bucket gives the burst, then the rate, and names when the next certificate is due', (t) => {
  const limits = new IssuanceLimits({ ratePerMinute: 60, burst: 3, maxConcurrent: 0, shedRetryMs: 1000 });
  const now = 1_000_000;
  for (let i = 0; i < 3; i++) t.true(limits.take(FRONTEND, now).ok);
  const refused = limits.take(FRONTEND, now);
  t.like(refused, { ok: false, reason: 'identity_rate', retryAfterMs: 1000 });
  t.true(limits.take(BACKEND, now).ok, 'another identity has its own bucket');
  t.false(limits.take(FRONTEND, now + 999).ok);
  t.true(limits.take(FRONTEND, now + 2000).ok, 'one per second refills');
  t.true(new IssuanceLimits({ ratePerMinute: 0, burst: 1, maxConcurrent: 0, shedRetryMs: 1 }).take(FRONTEND, now).ok, 'rate 0 disables the limit');
});

test('the concurrency limit sheds beyond maxConcurrent and frees a slot on release', (t) => {
  const limits = new IssuanceLimits({ ratePerMinute: 0, burst: 1, maxConcurrent: 2, shedRetryMs: 1500 });
  t.true(limits.acquire().ok);
  t.true(limits.acquire().ok);
  t.like(limits.acquire(), { ok: false, reason: 'concurrency', retryAfterMs: 1500 });
  limits.release();
  t.true(limits.acquire().ok);
});

test('one reused token can no longer get hundreds of certificates in a second: the rest are RESOURCE_EXHAUSTED with a pushback hint', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { issuanceBurst: 20, issuanceRate: 60 }, { clock });
  const csr = csrFor(FRONTEND);
  const results = [];
  for (let batch = 0; batch < 6; batch++) {
    results.push(...(await Promise.all(Array.from({ length: 50 }, () => h.client.createCertificate(csr.pem, token)))));
  }
  const issued = results.filter((r) => r.ok).length;
  const refused = results.filter((r) => !r.ok);
  t.is(issued, 20, 'the burst, and no more while the clock stands still');
  t.is(refused.length, 280);
  for (const r of refused) {
    if (r.ok) continue;
    t.is(r.grpcCode, status.RESOURCE_EXHAUSTED);
    t.is(r.retryAfterMs, 1000, 'one certificate per second at 60/min');
    t.regex(r.message, /issuance budget/);
  }
  // Another identity is not starved by the first one's abuse.
  const other = await h.client.createCertificate(csrFor(BACKEND).pem, { kind: 'token', token: await serviceAccountToken(h.jwtKey.privateKey, { sa: 'backend' }) });
  t.true(other.ok, other.ok ? '' : other.message);
  await clock.advance(1000);
  t.true((await h.client.createCertificate(csr.pem, token)).ok, 'the budget refills with time');
});

test('calls beyond --max-concurrent-issuance are shed at once with the --shed-retry hint instead of queueing', async (t) => {
  const h = await startHarness(t, { maxConcurrentIssuance: 1, shedRetry: 3000, issuanceRate: 0 });
  const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => serviceAccountToken(h.jwtKey.privateKey, { sa: `sa-${i}` })));
  const results = await Promise.all(tokens.map((tok, i) => h.client.createCertificate(csrFor(`spiffe://example.org/ns/shop/sa/sa-${i}`).pem, { kind: 'token', token: tok })));
  const shed = results.filter((r) => !r.ok);
  t.true(results.some((r) => r.ok), 'some are served');
  t.true(shed.length > 0, 'JWT verification is asynchronous, so calls overlap and the ones beyond the limit are shed');
  for (const r of shed) if (!r.ok) t.like(r, { grpcCode: status.RESOURCE_EXHAUSTED, retryAfterMs: 3000 });
  t.truthy(h.logs.find((l) => l['event'] === 'certificate_shed'), 'shedding is logged (at most once a second)');
});

test('the agent reads grpc-retry-pushback-ms as gRFC A6 says: a non-negative integer, capped; anything else is ignored', (t) => {
  const md = (v?: string) => {
    const m = new Metadata();
    if (v !== undefined) m.set('grpc-retry-pushback-ms', v);
    return m;
  };
  t.is(pushbackOf(md('1500')), 1500);
  t.is(pushbackOf(md('0')), 0);
  t.is(pushbackOf(md('99999999999')), MAX_PUSHBACK_MS);
  for (const bad of ['-1', '1.5', 'soon', '']) t.is(pushbackOf(md(bad)), undefined, bad);
  t.is(pushbackOf(md()), undefined);
  t.is(pushbackOf(undefined), undefined);
});

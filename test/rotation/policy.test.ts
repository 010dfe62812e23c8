import test from 'ava';
import { MeshidError } from '../../src/lib/errors.js';
import {
  authKindFor,
  DEFAULT_ROTATION_POLICY,
  renewalTime,
  resolveRotationPolicy,
  retryDelay,
  type RenewalOptions,
} from '../../src/rotation/policy.js';
import { seededRandom } from './harness.js';

const S = 1_000;
const MIN = 60 * S;
const H = 60 * MIN;
const DAY = 24 * H;
const T0 = Date.UTC(2026, 0, 1);
const D = DEFAULT_ROTATION_POLICY.renewal;

interface RenewalRow {
  name: string;
  notBefore: number;
  notAfter: number;
  now: number;
  random: number;
  options?: Partial<RenewalOptions>;
  /** Expected renewal time. */
  expect: number;
}

const renewalRows: RenewalRow[] = [
  { name: '1 h SVID, draw 0.5: exactly half the lifetime', notBefore: T0, notAfter: T0 + H, now: T0, random: 0.5, expect: T0 + 30 * MIN },
  { name: '1 h SVID, draw 0: low edge of the ±10 % window (40 %)', notBefore: T0, notAfter: T0 + H, now: T0, random: 0, expect: T0 + 24 * MIN },
  { name: '1 h SVID, draw 0.75: 55 %', notBefore: T0, notAfter: T0 + H, now: T0, random: 0.75, expect: T0 + 33 * MIN },
  { name: '1 h SVID, draw 1 (clamped): high edge (60 %)', notBefore: T0, notAfter: T0 + H, now: T0, random: 1, expect: T0 + 36 * MIN },
  { name: 'a draw outside [0, 1) is clamped', notBefore: T0, notAfter: T0 + H, now: T0, random: -3, expect: T0 + 24 * MIN },
  {
    name: 'a back-dated notBefore (skew allowance) does not count in the lifetime',
    notBefore: T0 - MIN,
    notAfter: T0 + H,
    now: T0,
    random: 0.5,
    expect: T0 + 30 * MIN,
  },
  { name: '24 h SVID (Istio default): 12 h', notBefore: T0, notAfter: T0 + DAY, now: T0, random: 0.5, expect: T0 + 12 * H },
  { name: 'renewFraction 0.7 without jitter', notBefore: T0, notAfter: T0 + H, now: T0, random: 0.9, options: { renewFraction: 0.7, jitterFraction: 0 }, expect: T0 + 42 * MIN },
  { name: 'jitter 0.01 (Istio): 49 % at draw 0', notBefore: T0, notAfter: T0 + 100 * MIN, now: T0, random: 0, options: { jitterFraction: 0.01 }, expect: T0 + 49 * MIN },
  {
    name: '90-day SVID: capped at maxDelay (24 h) x (1 - jitter x draw), draw 0',
    notBefore: T0,
    notAfter: T0 + 90 * DAY,
    now: T0,
    random: 0,
    expect: T0 + DAY,
  },
  { name: '90-day SVID, draw 0.5: 95 % of the cap', notBefore: T0, notAfter: T0 + 90 * DAY, now: T0, random: 0.5, expect: T0 + 0.95 * DAY },
  {
    name: 'received late in its life: the fraction applies to what is left (5 of 10 min)',
    notBefore: T0 - 50 * MIN,
    notAfter: T0 + 10 * MIN,
    now: T0,
    random: 0.5,
    expect: T0 + 5 * MIN,
  },
  { name: 'a 4 s SVID, draw 0 (1.6 s): floor is renewFraction of what is left (2 s), not 5 s', notBefore: T0, notAfter: T0 + 4 * S, now: T0, random: 0, expect: T0 + 2 * S },
  { name: 'a 20 s SVID: the normal point (10 s) is above the floor', notBefore: T0, notAfter: T0 + 20 * S, now: T0, random: 0.5, expect: T0 + 10 * S },
  { name: 'already expired on arrival: at once', notBefore: T0 - 2 * H, notAfter: T0 - H, now: T0, random: 0.5, expect: T0 },
];

for (const row of renewalRows) {
  test(`renewalTime: ${row.name}`, (t) => {
    const options = { ...D, ...row.options };
    t.is(renewalTime({ notBefore: row.notBefore, notAfter: row.notAfter }, row.now, row.random, options), row.expect);
  });
}

test('renewalTime: every draw lands inside [40 %, 60 %] of the lifetime, and a fleet spreads over the window', (t) => {
  const random = seededRandom(7);
  const lifetime = H;
  const bins = new Array<number>(10).fill(0);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < 2000; i++) {
    const at = renewalTime({ notBefore: T0, notAfter: T0 + lifetime }, T0, random(), D);
    const fraction = (at - T0) / lifetime;
    t.true(fraction >= 0.4 && fraction <= 0.6, `fraction ${fraction}`);
    min = Math.min(min, fraction);
    max = Math.max(max, fraction);
    bins[Math.min(9, Math.floor((fraction - 0.4) / 0.02))]!++;
  }
  t.true(max - min > 0.19, `a fleet of 2000 spans only ${(max - min).toFixed(3)} of the lifetime`);
  // Uniform: each 2 %-of-lifetime bin gets about 200 of 2000; none is starved, none hoards.
  for (const b of bins) t.true(b > 140 && b < 260, `bins ${bins.join(',')}`);
});

test('renewalTime: without jitter a fleet renews in step; with it, no two of 50 agents share a second', (t) => {
  const random = seededRandom(99);
  const withJitter = new Set<number>();
  const withoutJitter = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const r = random();
    withJitter.add(Math.floor(renewalTime({ notBefore: T0, notAfter: T0 + H }, T0, r, D) / S));
    withoutJitter.add(renewalTime({ notBefore: T0, notAfter: T0 + H }, T0, r, { ...D, jitterFraction: 0 }));
  }
  t.is(withoutJitter.size, 1);
  t.true(withJitter.size >= 49, `only ${withJitter.size} distinct seconds`);
});

interface RetryRow {
  name: string;
  now: number;
  backoffMs: number;
  expiresAt: number | undefined;
  expect: number;
}

const ATTEMPT = DEFAULT_ROTATION_POLICY.retry.attemptTimeoutMs;
const retryRows: RetryRow[] = [
  { name: 'no SVID held: plain backoff', now: T0, backoffMs: 40 * S, expiresAt: undefined, expect: 40 * S },
  { name: 'SVID valid well beyond the backoff: plain backoff', now: T0, backoffMs: 40 * S, expiresAt: T0 + 10 * MIN, expect: 40 * S },
  {
    name: 'backoff would pass the last start that finishes before expiry: pulled in to it',
    now: T0,
    backoffMs: 60 * S,
    expiresAt: T0 + 45 * S,
    expect: 45 * S - ATTEMPT,
  },
  { name: 'exactly at the last start: plain backoff (that attempt was the last chance)', now: T0, backoffMs: 60 * S, expiresAt: T0 + ATTEMPT, expect: 60 * S },
  { name: 'SVID already expired: plain backoff', now: T0, backoffMs: 7 * S, expiresAt: T0 - 1, expect: 7 * S },
  { name: 'pulled in but never below 1 ms', now: T0, backoffMs: 60 * S, expiresAt: T0 + ATTEMPT + 0.4, expect: 1 },
];

for (const row of retryRows) {
  test(`retryDelay: ${row.name}`, (t) => {
    t.is(retryDelay(row.now, row.backoffMs, row.expiresAt, ATTEMPT), row.expect);
  });
}

const authRows: Array<{ name: string; now: number; expiresAt?: number; refused: boolean; expect: 'mtls' | 'token' }> = [
  { name: 'no SVID: token', now: T0, refused: false, expect: 'token' },
  { name: 'valid for long: mTLS', now: T0, expiresAt: T0 + 30 * MIN, refused: false, expect: 'mtls' },
  { name: 'valid for just over the margin: mTLS', now: T0, expiresAt: T0 + 60 * S + 1, refused: false, expect: 'mtls' },
  { name: 'within the margin: token', now: T0, expiresAt: T0 + 60 * S, refused: false, expect: 'token' },
  { name: 'expired: token', now: T0, expiresAt: T0 - 1, refused: false, expect: 'token' },
  { name: 'the CA just refused our SVID: token', now: T0, expiresAt: T0 + 30 * MIN, refused: true, expect: 'token' },
];

for (const row of authRows) {
  test(`authKindFor: ${row.name}`, (t) => {
    t.is(authKindFor(row.now, row.expiresAt, DEFAULT_ROTATION_POLICY.mtlsMarginMs, row.refused), row.expect);
  });
}

test('resolveRotationPolicy fills defaults and freezes', (t) => {
  const p = resolveRotationPolicy({ renewal: { renewFraction: 0.6 }, retry: { maxMs: 30_000 } });
  t.is(p.renewal.renewFraction, 0.6);
  t.is(p.renewal.jitterFraction, 0.1);
  t.is(p.retry.maxMs, 30_000);
  t.is(p.retry.initialMs, 1_000);
  t.is(p.mtlsMarginMs, 60_000);
  t.true(Object.isFrozen(p) && Object.isFrozen(p.renewal) && Object.isFrozen(p.retry));
});

const badPolicies: Array<[string, Parameters<typeof resolveRotationPolicy>[0], RegExp]> = [
  ['renewFraction 0', { renewal: { renewFraction: 0 } }, /renewFraction/],
  ['renewFraction 1', { renewal: { renewFraction: 1 } }, /renewFraction/],
  ['renewFraction NaN', { renewal: { renewFraction: Number.NaN } }, /renewFraction/],
  ['jitter pushing past 100 %', { renewal: { renewFraction: 0.95, jitterFraction: 0.1 } }, /jitterFraction/],
  ['jitter reaching 0 %', { renewal: { renewFraction: 0.1, jitterFraction: 0.1 } }, /jitterFraction/],
  ['negative jitter', { renewal: { jitterFraction: -0.1 } }, /jitterFraction/],
  ['maxDelay below minDelay', { renewal: { minDelayMs: 10_000, maxDelayMs: 5_000 } }, /maxDelayMs/],
  ['retry max below initial', { retry: { initialMs: 5_000, maxMs: 1_000 } }, /retry\.maxMs/],
  ['retry multiplier below 1', { retry: { multiplier: 0.5 } }, /retry\.multiplier/],
  ['zero attempt timeout', { retry: { attemptTimeoutMs: 0 } }, /attemptTimeoutMs/],
  ['negative mTLS margin', { mtlsMarginMs: -1 }, /mtlsMarginMs/],
];

for (const [name, input, re] of badPolicies) {
  test(`resolveRotationPolicy refuses ${name}, naming the option`, (t) => {
    const e = t.throws(() => resolveRotationPolicy(input), { instanceOf: MeshidError });
    t.is(e?.code, 'rotation_option_invalid');
    t.regex(e?.message ?? '', re);
  });
}

import test from 'ava';
import { Backoff } from '../../src/lib/backoff.js';

test('the window grows by the multiplier from initialMs and stops at maxMs', (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 60_000, multiplier: 2, random: () => 0.5 });
  const caps: number[] = [];
  for (let i = 0; i < 9; i++) {
    caps.push(b.currentCap());
    b.next();
  }
  t.deepEqual(caps, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  t.is(b.attempts(), 9);
});

test('full jitter: each delay is random x window, never zero', (t) => {
  const draws = [0, 0.25, 0.999_999];
  const b = new Backoff({ initialMs: 1000, maxMs: 8000, multiplier: 2, random: () => draws.shift()! });
  t.deepEqual([b.next(), b.next(), b.next()], [1, 500, 3999]);
});

test('delays with Math.random stay in [1, window) and average half the window', (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 1000, multiplier: 1 });
  const n = 20_000;
  const delays = Array.from({ length: n }, () => b.next());
  t.true(Math.min(...delays) >= 1);
  t.true(Math.max(...delays) < 1000);
  const mean = delays.reduce((a, d) => a + d, 0) / n;
  t.true(mean > 480 && mean < 520, `mean ${mean}`);
});

test('reset returns to the first window', (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 10_000, multiplier: 3, random: () => 0.5 });
  b.next();
  b.next();
  t.is(b.currentCap(), 900);
  b.reset();
  t.is(b.currentCap(), 100);
  t.is(b.attempts(), 0);
});

test('thousands of failures neither overflow nor leave the cap', (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 60_000, multiplier: 2, random: () => 0.999 });
  for (let i = 0; i < 5000; i++) b.next();
  t.is(b.currentCap(), 60_000);
  t.is(b.next(), 59_940);
});

for (const [name, o] of [
  ['initialMs 0', { initialMs: 0, maxMs: 10, multiplier: 2 }],
  ['maxMs below initialMs', { initialMs: 10, maxMs: 5, multiplier: 2 }],
  ['multiplier below 1', { initialMs: 10, maxMs: 50, multiplier: 0.5 }],
  ['NaN', { initialMs: Number.NaN, maxMs: 50, multiplier: 2 }],
] as const) {
  test(`refuses ${name}`, (t) => {
    t.throws(() => new Backoff(o), { instanceOf: RangeError });
  });
}

test('a retry hint is honoured: never sooner than the hint, jittered by up to half of it', (t) => {
  let r = 0;
  const b = new Backoff({ initialMs: 1000, maxMs: 60_000, multiplier: 2, random: () => r });
  t.is(b.next(5000), 5000, 'random 0: exactly the hint');
  r = 0.999;
  const d = b.next(5000);
  t.true(d >= 5000 && d <= 7500, `${d}`);
  t.is(b.attempts(), 2, 'a hinted failure still widens the window');
  r = 0.5;
  t.is(b.next(undefined), 2000, 'without a hint: the jittered window (cap 4 s)');
});

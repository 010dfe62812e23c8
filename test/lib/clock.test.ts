import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';

const T0 = Date.UTC(2026, 0, 1);

test('FakeClock starts where told and moves only when advanced', async (t) => {
  t.is(new FakeClock().now(), T0);
  const c = new FakeClock(new Date(T0 + 5));
  t.is(c.now(), T0 + 5);
  await c.advance(1000);
  t.is(c.now(), T0 + 1005);
});

test('timers fire in due order, ties in arming order, each seeing now() equal to its due time', async (t) => {
  const c = new FakeClock(T0);
  const fired: Array<[string, number]> = [];
  c.setTimer(30, () => fired.push(['c', c.now()]));
  c.setTimer(10, () => fired.push(['a', c.now()]));
  c.setTimer(10, () => fired.push(['b', c.now()]));
  c.setTimer(31, () => fired.push(['late', c.now()]));
  t.is(c.pendingCount(), 4);
  t.is(c.nextDue(), T0 + 10);
  await c.advance(30);
  t.deepEqual(fired, [
    ['a', T0 + 10],
    ['b', T0 + 10],
    ['c', T0 + 30],
  ]);
  t.is(c.pendingCount(), 1);
  t.is(c.now(), T0 + 30);
});

test('a timer armed by a firing timer (even after an await) fires within the same advance', async (t) => {
  const c = new FakeClock(T0);
  const at: number[] = [];
  c.setTimer(100, async () => {
    await Promise.resolve();
    await null;
    c.setTimer(50, () => at.push(c.now()));
  });
  await c.advance(200);
  t.deepEqual(at, [T0 + 150]);
  t.is(c.now(), T0 + 200);
});

test('advance lets work already under way arm its timers before time moves', async (t) => {
  const c = new FakeClock(T0);
  let firedAt: number | undefined;
  // Async work started before the advance: it arms its timer after a few promise turns.
  void (async () => {
    await Promise.resolve();
    await Promise.resolve();
    c.setTimer(100, () => (firedAt = c.now()));
  })();
  await c.advance(100);
  t.is(firedAt, T0 + 100);
});

test('advance refuses to go backwards', async (t) => {
  const c = new FakeClock(T0);
  await t.throwsAsync(c.advance(-1), { instanceOf: RangeError });
  await t.throwsAsync(c.advance(Number.NaN), { instanceOf: RangeError });
  t.is(c.now(), T0);
});

test('cancel disarms; advanceToNext goes to the earliest timer', async (t) => {
  const c = new FakeClock(T0);
  let n = 0;
  const timer = c.setTimer(10, () => n++);
  c.setTimer(25, () => n++);
  timer.cancel();
  timer.cancel();
  t.is(c.pendingCount(), 1);
  await c.advanceToNext();
  t.is(n, 1);
  t.is(c.now(), T0 + 25);
  await c.advanceToNext(); // nothing armed: no-op
  t.is(c.now(), T0 + 25);
});

test('waitForTimers resolves once enough timers are armed', async (t) => {
  const c = new FakeClock(T0);
  c.setTimer(10, () => {});
  await c.waitForTimers(1);
  let done = false;
  const waiting = c.waitForTimers(3).then(() => (done = true));
  c.setTimer(10, () => {});
  await Promise.resolve();
  t.false(done);
  c.setTimer(10, () => {});
  await waiting;
  t.true(done);
});

test('jump steps the wall clock like a suspend: nothing fires, armed timers keep their remaining time', async (t) => {
  const c = new FakeClock(T0);
  const fired: number[] = [];
  c.setTimer(10_000, () => fired.push(c.now()));
  await c.advance(4_000);
  c.jump(3_600_000);
  t.is(c.now(), T0 + 4_000 + 3_600_000);
  t.deepEqual(fired, []);
  t.is(c.nextDue()! - c.now(), 6_000, 'the remaining 6 s survive the jump');
  await c.advance(5_999);
  t.deepEqual(fired, []);
  await c.advance(1);
  t.deepEqual(fired, [T0 + 10_000 + 3_600_000]);
  c.jump(-60_000); // an NTP step back
  t.is(c.now(), T0 + 10_000 + 3_540_000);
});

test('systemClock: real time, real timers, cancel works', async (t) => {
  const before = Date.now();
  t.true(Math.abs(systemClock.now() - before) < 1000);
  const fired = await new Promise<boolean>((resolve) => {
    systemClock.setTimer(5, () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  t.true(fired);
  let cancelled = true;
  systemClock.setTimer(5, () => (cancelled = false)).cancel();
  await new Promise((r) => setTimeout(r, 30));
  t.true(cancelled);
});

test('systemClock: a delay beyond setTimeout\'s 2^31-1 ms limit is not clamped to 1 ms', async (t) => {
  let fired = false;
  const timer = systemClock.setTimer(2 ** 31 + 5_000, () => (fired = true));
  await new Promise((r) => setTimeout(r, 50));
  timer.cancel();
  t.false(fired);
});

import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { debounceEvents, watchPaths } from '../../src/lib/file-watch.js';
import { tempDir } from '../helpers/tmp.js';
import { writeK8sVolume } from '../helpers/k8s-volume.js';


function nextChange(register: (resolve: () => void) => void, ms = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    register(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

test('a Kubernetes ..data swap is seen through a watched file path', async (t) => {
  const dir = tempDir(t);
  writeK8sVolume(dir, { 'root.pem': 'v1' });
  let waiter: (() => void) | undefined;
  const w = watchPaths([path.join(dir, 'root.pem')], () => waiter?.(), { clock: systemClock, debounceMs: 20 });
  t.teardown(() => w.close());
  await w.ready;
  const changed = nextChange((r) => (waiter = r));
  writeK8sVolume(dir, { 'root.pem': 'v2' });
  t.true(await changed, 'no change event after the ..data swap');
  t.is(fs.readFileSync(path.join(dir, 'root.pem'), 'utf8'), 'v2');
});

/** Resolves once a file event has armed the debounce timer on the fake clock (the sign that chokidar saw it). */
async function armed(clock: FakeClock, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no file event within ${ms} ms`)), ms)));
  try {
    await Promise.race([clock.waitForTimers(1), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test('plain writes in a watched directory are seen, and reach onChange when the debounce falls due on the injected clock', async (t) => {
  const dir = tempDir(t);
  const clock = new FakeClock();
  let calls = 0;
  const w = watchPaths([dir], () => calls++, { clock, debounceMs: 150 });
  t.teardown(() => w.close());
  await w.ready;
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `p${i}.yaml`), String(i));
  await armed(clock);
  // Time stands still, so every event of the burst re-arms the one timer at now + 150 ms.
  t.is(calls, 0, 'called before the debounce fell due');
  t.is(clock.pendingCount(), 1, 'a burst holds one timer');
  t.is(clock.nextDue(), clock.now() + 150);
  await clock.advanceToNext();
  t.is(calls, 1);
});

test('a burst of events makes one call, debounceMs after its last event', async (t) => {
  const clock = new FakeClock();
  let calls = 0;
  const d = debounceEvents(() => calls++, { clock, debounceMs: 100, settleMs: 1000 });
  for (let i = 0; i < 5; i++) {
    d.event();
    t.is(clock.pendingCount(), 1, 'an event replaces the armed call');
    await clock.advance(50);
  }
  t.is(calls, 0, 'called inside the burst');
  await clock.advance(49);
  t.is(calls, 0);
  await clock.advance(1);
  t.is(calls, 1, 'one call, 100 ms after the last event');
});

test('close cancels the armed call and ignores later events', async (t) => {
  const clock = new FakeClock();
  let calls = 0;
  const d = debounceEvents(() => calls++, { clock, debounceMs: 100, settleMs: 1000 });
  d.event();
  d.close();
  t.is(clock.pendingCount(), 0);
  d.event();
  t.is(clock.pendingCount(), 0);
  await clock.advance(60_000);
  t.is(calls, 0);
});

test('close stops notifications: a call a file event armed is cancelled', async (t) => {
  const dir = tempDir(t);
  const clock = new FakeClock();
  let calls = 0;
  const w = watchPaths([dir], () => calls++, { clock, debounceMs: 10 });
  await w.ready;
  fs.writeFileSync(path.join(dir, 'x'), '1');
  await armed(clock);
  await w.close();
  t.is(clock.pendingCount(), 0);
  await clock.advance(60_000);
  t.is(calls, 0);
});

test('resyncMs calls onChange periodically on the injected clock, with no file event at all', async (t) => {
  const dir = tempDir(t);
  const clock = new FakeClock();
  let calls = 0;
  const w = watchPaths([dir], () => calls++, { clock, resyncMs: 10_000 });
  await w.ready;
  await clock.advance(9_999);
  t.is(calls, 0);
  await clock.advance(1);
  t.is(calls, 1);
  await clock.advance(10_000);
  t.is(calls, 2);
  await w.close();
  t.is(clock.pendingCount(), 0, 'close cancels the periodic call');
});

test('after a burst, one more call comes once things settle (chokidar may drop the last event of a burst)', async (t) => {
  const dir = tempDir(t);
  const clock = new FakeClock();
  let calls = 0;
  const w = watchPaths([dir], () => calls++, { clock, debounceMs: 100, settleMs: 1000 });
  t.teardown(() => w.close());
  await w.ready;
  fs.writeFileSync(path.join(dir, 'p.yaml'), '1');
  await armed(clock);
  t.is(clock.pendingCount(), 1, 'the debounce timer is armed');
  await clock.advance(100);
  t.is(calls, 1, 'the debounced call');
  await clock.advance(999);
  t.is(calls, 1);
  await clock.advance(1);
  t.is(calls, 2, 'the settle call');
  await clock.advance(60_000);
  t.is(calls, 2, 'and nothing more');
});

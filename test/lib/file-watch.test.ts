import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { watchPaths } from '../../src/lib/file-watch.js';
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

test('plain writes in a watched directory are seen, and bursts are debounced into one call', async (t) => {
  const dir = tempDir(t);
  let calls = 0;
  let waiter: (() => void) | undefined;
  const w = watchPaths([dir], () => {
    calls++;
    waiter?.();
  }, { clock: systemClock, debounceMs: 150 });
  t.teardown(() => w.close());
  await w.ready;
  const changed = nextChange((r) => (waiter = r));
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `p${i}.yaml`), String(i));
  t.true(await changed);
  await new Promise((r) => setTimeout(r, 300));
  t.is(calls, 1);
});

test('close stops notifications', async (t) => {
  const dir = tempDir(t);
  let calls = 0;
  const w = watchPaths([dir], () => calls++, { clock: systemClock, debounceMs: 10 });
  await w.ready;
  await w.close();
  fs.writeFileSync(path.join(dir, 'x'), '1');
  await new Promise((r) => setTimeout(r, 200));
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
  let eventSeen: (() => void) | undefined;
  const w = watchPaths([dir], () => calls++, { clock, debounceMs: 100, settleMs: 1000 });
  t.teardown(() => w.close());
  await w.ready;
  // The debounce timer armed by a real file event is the signal that chokidar saw it.
  const armed = clock.waitForTimers(1).then(() => eventSeen?.());
  const seen = new Promise<void>((r) => (eventSeen = r));
  fs.writeFileSync(path.join(dir, 'p.yaml'), '1');
  await Promise.race([seen, new Promise((r) => setTimeout(r, 5000))]);
  void armed;
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

import test from 'ava';
import { Rerun } from '../../src/lib/rerun.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

test('calls during a run ask for exactly one more run, and every caller waits for the run that covers it', async (t) => {
  const gates = [gate(), gate()];
  let runs = 0;
  let settled = 0;
  const r = new Rerun(async () => void (await gates[runs++]!.wait), { settled: () => settled++ });
  const first = r.run();
  const second = r.run();
  const third = r.run();
  t.is(second, first);
  t.is(third, first);
  gates[0]!.open();
  await new Promise((resolve) => setImmediate(resolve));
  t.is(runs, 2, 'one rerun for the two calls that came during the first run');
  gates[1]!.open();
  await first;
  t.is(runs, 2);
  t.is(settled, 1);
  await r.idle();
});

test('once stopped, no run starts and a pending rerun is dropped; a failing run leaves it usable', async (t) => {
  let stopped = false;
  let runs = 0;
  const g = gate();
  const r = new Rerun(async () => {
    runs++;
    await g.wait;
  }, { stopped: () => stopped });
  const p = r.run();
  void r.run();
  stopped = true;
  g.open();
  await p;
  t.is(runs, 1);
  await r.run();
  t.is(runs, 1);

  const failing = new Rerun(async () => {
    throw new Error('boom');
  });
  await t.throwsAsync(failing.run(), { message: 'boom' });
  await t.throwsAsync(failing.run(), { message: 'boom' }, 'a new run starts after a failed one');
});

/**
 * Issue 12 item 3: the policy directory deleted and created again (an operator's `rm -rf` and
 * re-deploy, a volume remounted) is watched again: edits after it are seen from file events
 * alone, with the periodic resync off.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { type PolicySource, type ReloadOutcome, startPolicySource } from '../../src/authz/policy-source.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { tempDir } from '../helpers/tmp.js';
import { capturingLogger } from './helpers/authz-client.js';
import { policyDoc } from './helpers/policies.js';

const DEBOUNCE_MS = 30;
const doc = (name: string) => policyDoc({ name, action: 'ALLOW', rules: [{}] });

/** Fires the debounce timer whenever the watcher arms it (no wall-clock waits for the debounce). */
function pumpClock(clock: FakeClock): () => Promise<void> {
  let stopped = false;
  let stop!: () => void;
  const stopping = new Promise<void>((resolve) => (stop = resolve));
  const loop = (async () => {
    while (!stopped) {
      await Promise.race([clock.waitForTimers(1), stopping]);
      if (!stopped) await clock.advance(DEBOUNCE_MS);
    }
  })();
  return async () => {
    stopped = true;
    stop();
    await loop;
  };
}

/** The next reload outcome that satisfies want, or a failure after ms of wall-clock time. */
function outcome(source: PolicySource, want: (o: ReloadOutcome) => boolean, what: string, ms = 8000): Promise<ReloadOutcome> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no reload outcome ${what} within ${ms} ms`));
    }, ms);
    const off = source.onReload((o) => {
      if (want(o)) {
        clearTimeout(timer);
        off();
        resolve(o);
      }
    });
  });
}

const names = (source: PolicySource) => source.current()?.policies.map((p) => p.name);

test('after the policy directory is deleted and recreated, edits are seen again from file events (resync off)', async (t) => {
  const dir = path.join(tempDir(t), 'policies');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'p.yaml'), doc('first'));
  const clock = new FakeClock();
  const { logger } = capturingLogger();
  const source = await startPolicySource({ dir, clock, logger, debounceMs: DEBOUNCE_MS, resyncMs: 0 });
  const stopPump = pumpClock(clock);
  t.teardown(async () => {
    await stopPump();
    await source.close();
  });
  t.deepEqual(names(source), ['first']);

  const gone = outcome(source, (o) => o.status === 'rejected', 'after the directory was removed');
  fs.rmSync(dir, { recursive: true });
  await gone;
  t.deepEqual(names(source), ['first'], 'the last good set stays while the directory is missing');

  const back = outcome(source, (o) => o.status === 'loaded' && names(source)?.[0] === 'second', 'after the directory came back');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'p.yaml'), doc('second'));
  await back;

  // The point of the issue: later edits in the new directory are still seen.
  for (const name of ['third', 'fourth']) {
    const edited = outcome(source, (o) => o.status === 'loaded' && names(source)?.[0] === name, `after editing to ${name}`);
    fs.writeFileSync(path.join(dir, 'p.yaml'), doc(name));
    await edited;
    t.deepEqual(names(source), [name]);
  }
});

/**
 * Hot reload under load: the policy directory is rewritten in a loop (Kubernetes ..data swaps,
 * an invalid edit, atomic renames) while Check requests flow, and every decision must be exactly
 * what one of the two policy sets says, under the revision it reports: never a mix.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FakeClock } from '../helpers/fake-clock.js';
import type { ReloadOutcome } from '../../src/authz/policy-source.js';
import { revisionOf } from '../../src/authz/policy-set.js';
import { type AuthzService, startAuthzService } from '../../src/authz/server.js';
import { tempDir } from '../helpers/tmp.js';
import { authzClient, capturingLogger, checkRequest, metadataOf } from './helpers/authz-client.js';
import { policyDoc } from './helpers/policies.js';
import { writeK8sVolume } from '../helpers/k8s-volume.js';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const DEBOUNCE_MS = 30;

/** Set X allows /x/* and denies /x/secret, in two files: a half-applied change is visible. */
function policySet(x: 'a' | 'b'): Record<string, string> {
  return {
    'allow.yaml': policyDoc({ name: `allow-${x}`, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { paths: [`/${x}/*`] } }] }] }),
    'deny.yaml': policyDoc({ name: `deny-${x}`, action: 'DENY', rules: [{ to: [{ operation: { paths: [`/${x}/secret`] } }] }] }),
  };
}
const SETS = { a: policySet('a'), b: policySet('b') };
const INVALID = { 'allow.yaml': SETS.a['allow.yaml']!, 'deny.yaml': policyDoc({ name: 'deny-a', action: 'DENY', rules: [{ to: [{ operation: { pathz: ['/a/secret'] } }] }] }) };
const PROBES = ['/a/x', '/b/x', '/a/secret', '/b/secret'] as const;

/** What set x decides for each probe, and which policy decides it. */
function expected(x: 'a' | 'b', probe: string): { decision: string; policy: string | undefined } {
  if (probe === `/${x}/secret`) return { decision: 'deny', policy: `shop/deny-${x}` };
  if (probe.startsWith(`/${x}/`)) return { decision: 'allow', policy: `shop/allow-${x}` };
  return { decision: 'deny', policy: undefined };
}

function revisionOfSet(files: Record<string, string>): string {
  return revisionOf(Object.entries(files).map(([file, text]) => ({ file, text })));
}


/** Fires the debounce timer whenever the watcher arms it, until stopped: debouncing without wall-clock sleeps. */
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

function nextOutcome(service: AuthzService, want: (o: ReloadOutcome) => boolean): Promise<ReloadOutcome> {
  return new Promise((resolve) => {
    const off = service.policies.onReload((o) => {
      if (want(o)) {
        off();
        resolve(o);
      }
    });
  });
}

interface Observed {
  probe: string;
  decision: unknown;
  policy: unknown;
  revision: unknown;
}

/** Sends probes round-robin from several concurrent callers until stopped. */
function flowRequests(address: string, callers: number): { stop: () => Promise<Observed[]> } {
  const client = authzClient(address);
  const seen: Observed[] = [];
  let running = true;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let i = c; running; i++) {
      const probe = PROBES[i % PROBES.length]!;
      const md = metadataOf(await client.check(checkRequest({ principal: FRONTEND, path: probe })));
      seen.push({ probe, decision: md.decision, policy: md.policy, revision: md.revision });
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      client.close();
      return seen;
    },
  };
}

function assertNoMix(t: ExecutionContext, seen: readonly Observed[], revisions: Record<string, 'a' | 'b'>): void {
  const bad = seen.filter((o) => {
    const set = revisions[String(o.revision)];
    if (!set) return true;
    const e = expected(set, o.probe);
    return o.decision !== e.decision || o.policy !== e.policy;
  });
  t.deepEqual(bad.slice(0, 5), [], `${bad.length} of ${seen.length} decisions match neither policy set`);
}

test('..data swaps and an invalid edit while requests flow: every decision is one set or the other, never a mix', async (t) => {
  const dir = path.join(tempDir(t), 'policies');
  fs.mkdirSync(dir);
  writeK8sVolume(dir, SETS.a);
  const clock = new FakeClock();
  const { logger, lines } = capturingLogger();
  const socket = path.join(tempDir(t, 'meshid-sock-'), 'authz.sock');
  // resyncMs 0: every reload here is triggered by the watcher seeing the ..data swap.
  const service = await startAuthzService({ socket, policyDir: dir, reloadDebounceMs: DEBOUNCE_MS, resyncMs: 0 }, { logger, clock });
  t.teardown(() => service.close());
  const revA = revisionOfSet(SETS.a);
  const revB = revisionOfSet(SETS.b);
  t.is(service.revision(), revA);

  const stopPump = pumpClock(clock);
  const traffic = flowRequests(`unix:${socket}`, 4);
  const swaps: string[] = [];
  for (let i = 0; i < 10; i++) {
    const next = i % 2 === 0 ? 'b' : 'a';
    const want = next === 'a' ? revA : revB;
    if (i === 5) {
      // An invalid edit: rejected, and the set in force stays.
      const before = service.revision();
      const rejected = nextOutcome(service, (o) => o.status === 'rejected');
      writeK8sVolume(dir, INVALID);
      const outcome = await rejected;
      t.is(outcome.status === 'rejected' ? outcome.kept : undefined, before);
      t.is(service.revision(), before, 'the invalid edit changed nothing');
    }
    const loaded = nextOutcome(service, (o) => o.status === 'loaded' && o.revision === want);
    writeK8sVolume(dir, SETS[next]);
    await loaded;
    t.is(service.revision(), want);
    swaps.push(next);
  }
  const seen = await traffic.stop();
  await stopPump();

  assertNoMix(t, seen, { [revA]: 'a', [revB]: 'b' });
  const perRevision = (rev: string) => seen.filter((o) => o.revision === rev).length;
  t.true(perRevision(revA) > 0 && perRevision(revB) > 0, `decisions under both sets (a: ${perRevision(revA)}, b: ${perRevision(revB)})`);
  t.true(service.ready());
  const invalidLogged = lines().find((l) => l.level === 'error' && String(l.msg).includes('deny.yaml') && String(l.msg).includes('spec.rules[0].to[0].operation.pathz'));
  t.truthy(invalidLogged, 'the invalid edit is logged with file and field');
  t.truthy(lines().find((l) => String(l.msg).includes('policy change rejected; revision')));
});

test('atomic renames of a multi-document file in a plain directory while requests flow', async (t) => {
  const dir = path.join(tempDir(t), 'policies');
  fs.mkdirSync(dir);
  const asOneFile = (x: 'a' | 'b') => `${SETS[x]['allow.yaml']}\n---\n${SETS[x]['deny.yaml']}\n`;
  const write = (text: string) => {
    const tmp = path.join(dir, '.policies.yaml.tmp'); // hidden: never read half-written
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(dir, 'policies.yaml'));
  };
  write(asOneFile('a'));
  const clock = new FakeClock();
  const { logger } = capturingLogger();
  const service = await startAuthzService({ listen: { host: '127.0.0.1', port: 0 }, policyDir: dir, reloadDebounceMs: DEBOUNCE_MS, resyncMs: 0 }, { logger, clock });
  t.teardown(() => service.close());
  const rev = (x: 'a' | 'b') => revisionOf([{ file: 'policies.yaml', text: asOneFile(x) }]);
  t.is(service.revision(), rev('a'));

  const stopPump = pumpClock(clock);
  const traffic = flowRequests(`127.0.0.1:${service.tcpPort}`, 3);
  for (let i = 0; i < 6; i++) {
    const next = i % 2 === 0 ? 'b' : 'a';
    if (i === 3) {
      const rejected = nextOutcome(service, (o) => o.status === 'rejected');
      write('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: broken\n');
      void service.policies.reload();
      await rejected;
    }
    const loaded = nextOutcome(service, (o) => o.status === 'loaded' && o.revision === rev(next));
    write(asOneFile(next));
    // chokidar misses some rename-over saves in quick succession (it can drop every other one):
    // the agent's periodic re-read covers that; here the test asks for the re-read directly.
    void service.policies.reload();
    await loaded;
  }
  const seen = await traffic.stop();
  await stopPump();
  assertNoMix(t, seen, { [rev('a')]: 'a', [rev('b')]: 'b' });
  t.true(seen.length > 0);
});

/**
 * bench:soak — a real `meshid ca` and `meshid agent` (child processes), ext_authz Checks at a fixed
 * rate over the agent's Unix socket, while the agent's certificate rotates (SIGUSR1 every
 * --rotate-every, default 60 s) and the policy directory is swapped between two sets (a Kubernetes
 * ..data swap every --reload-every, default 5 s).
 *
 * Reported: errors (failed RPCs; target 0), apart from them answers slower than Envoy's 200 ms
 * ext_authz timeout, decisions that match neither policy set under the revision they report
 * (target 0), p99 per interval, and the agent's RSS slope after the first interval (target flat;
 * a run of a minute or two mostly shows V8 growing its heaps). The last line is one JSON object.
 *
 *   node dist/bench/soak.js [--duration 10m] [--rate 200] [--rotate-every 60s] [--reload-every 5s] [--interval 30s]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { revisionOf } from '../src/authz/policy-set.js';
import { parseDuration } from '../src/config/options.js';
import { authzClient, checkRequest, metadataOf } from '../test/authz/helpers/authz-client.js';
import { writeK8sVolume } from '../test/helpers/k8s-volume.js';
import { MeshidProcess } from '../test/helpers/meshid-process.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    rate: { type: 'string', default: '200' },
    'rotate-every': { type: 'string', default: '60s' },
    'reload-every': { type: 'string', default: '5s' },
    interval: { type: 'string', default: '30s' },
  },
});
const DURATION_MS = parseDuration(args.duration!);
const RATE = Number(args.rate);
const ROTATE_MS = parseDuration(args['rotate-every']!);
const RELOAD_MS = parseDuration(args['reload-every']!);
const INTERVAL_MS = Math.min(parseDuration(args.interval!), DURATION_MS);
const ENVOY_TIMEOUT_MS = 200;
const TD = 'example.org';
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
const FRONTEND = `spiffe://${TD}/ns/shop/sa/frontend`;
const TOKEN = 'soak-token-orders-0123456789';

const log = (line: string) => process.stdout.write(`${line}\n`);

/** Set X allows the frontend on /X/*, and denies /X/secret, from two files (a half-applied swap shows). */
function policySet(x: 'a' | 'b'): Record<string, string> {
  const doc = (o: unknown) => JSON.stringify(o);
  const base = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy' };
  return {
    'allow.yaml': doc({ ...base, metadata: { name: `allow-${x}`, namespace: 'shop' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: [`${TD}/ns/shop/sa/frontend`] } }], to: [{ operation: { paths: [`/${x}/*`] } }] }] } }),
    'deny.yaml': doc({ ...base, metadata: { name: `deny-${x}`, namespace: 'shop' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: [`/${x}/secret`] } }] }] } }),
  };
}
const SETS = { a: policySet('a'), b: policySet('b') } as const;
const REVISIONS = new Map<string, 'a' | 'b'>(
  (['a', 'b'] as const).map((x) => [revisionOf(Object.entries(SETS[x]).map(([file, text]) => ({ file, text }))), x]),
);
const PROBES = ['/a/x', '/b/x', '/a/secret', '/b/secret'] as const;

function expected(x: 'a' | 'b', probe: string): { decision: string; policy: string | undefined } {
  if (probe === `/${x}/secret`) return { decision: 'deny', policy: `shop/deny-${x}` };
  if (probe.startsWith(`/${x}/`)) return { decision: 'allow', policy: `shop/allow-${x}` };
  return { decision: 'deny', policy: undefined };
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-soak-'));
  const procs: MeshidProcess[] = [];
  try {
    const tokens = path.join(dir, 'tokens.yaml');
    fs.writeFileSync(tokens, `tokens:\n  ${TOKEN}: ${ORDERS}\n`);
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, TOKEN);
    const policyDir = path.join(dir, 'policies');
    fs.mkdirSync(policyDir);
    writeK8sVolume(policyDir, SETS.a);

    const ca = new MeshidProcess(['ca', '--listen=127.0.0.1:0', `--trust-domain=${TD}`, `--state-dir=${path.join(dir, 'ca')}`, `--static-tokens=${tokens}`, '--ttl=1h']);
    procs.push(ca);
    const listening = await ca.waitFor('CA listening', (l) => l.event === 'listening');
    const socket = path.join(dir, 'authz.sock');
    const agent = new MeshidProcess([
      'agent',
      `--ca-address=${String(listening.address)}`,
      `--ca-bundle=${String(listening.bundle)}`,
      `--token-file=${tokenFile}`,
      `--trust-domain=${TD}`,
      `--spiffe-id=${ORDERS}`,
      `--sds-socket=${path.join(dir, 'sds.sock')}`,
      `--authz-socket=${socket}`,
      `--policy-dir=${policyDir}`,
      '--policy-resync=0',
      '--authz-decision-log-sample=0',
      '--admin-listen=127.0.0.1:0',
    ]);
    procs.push(agent);
    const started = await agent.waitFor('agent started', (l) => l.msg === `agent started (pid ${agent.pid})`);
    const admin = String(started.admin);
    for (let i = 0; (await fetch(`${admin}/readyz`)).status !== 200; i++) {
      if (i > 400) throw new Error('the agent did not become ready');
      await new Promise((r) => setTimeout(r, 25));
    }
    log(`soak: ${DURATION_MS / 1000} s, ${RATE} Checks/s over ${socket}, SIGUSR1 rotation every ${ROTATE_MS / 1000} s, policy swap every ${RELOAD_MS / 1000} s, agent pid ${agent.pid}`);

    const client = authzClient(`unix:${socket}`);
    let errors = 0;
    let late = 0;
    let mismatched = 0;
    let sent = 0;
    let answered = 0;
    const mismatchExamples: string[] = [];
    const intervals: Array<{ latencies: number[]; errors: number; rssMb: number }> = [];
    let current = { latencies: [] as number[], errors: 0, rssMb: 0 };
    const rss: Array<[number, number]> = [];
    const t0 = performance.now();

    const one = async (probe: string) => {
      const start = performance.now();
      try {
        const md = metadataOf(await client.check(checkRequest({ principal: FRONTEND, path: probe })));
        const ms = performance.now() - start;
        current.latencies.push(ms);
        answered++;
        if (ms > ENVOY_TIMEOUT_MS) late++;
        const set = REVISIONS.get(String(md.revision));
        const e = set ? expected(set, probe) : undefined;
        if (!e || md.decision !== e.decision || md.policy !== e.policy) {
          mismatched++;
          if (mismatchExamples.length < 5) mismatchExamples.push(`${probe}: ${md.decision} by ${String(md.policy)} under ${String(md.revision)}`);
        }
      } catch (err) {
        errors++;
        current.errors++;
        if (mismatchExamples.length < 5) mismatchExamples.push(`${probe}: ${(err as Error).message}`);
      }
    };

    // Open loop: requests go out on schedule whatever the answers do (a stall shows as latency).
    const inFlight = new Set<Promise<void>>();
    const tickMs = 10;
    let owed = 0;
    let next = 'b' as 'a' | 'b';
    let swaps = 0;
    let rotations = 0;
    let nextReload = RELOAD_MS;
    let nextRotate = ROTATE_MS;
    let nextInterval = INTERVAL_MS;
    let nextRss = 1000;
    const renewedBefore = agent.lines.filter((l) => l.msg === 'SVID renewed').length;
    while (performance.now() - t0 < DURATION_MS) {
      const elapsed = performance.now() - t0;
      // Owed by the schedule, not by ticks: a late timer sends the requests it is behind on.
      owed = Math.floor((elapsed * RATE) / 1000) - sent;
      for (; owed >= 1; owed--) {
        const p = one(PROBES[sent++ % PROBES.length]!);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (elapsed >= nextReload) {
        writeK8sVolume(policyDir, SETS[next]);
        next = next === 'a' ? 'b' : 'a';
        swaps++;
        nextReload += RELOAD_MS;
      }
      if (elapsed >= nextRotate) {
        agent.signal('SIGUSR1');
        rotations++;
        nextRotate += ROTATE_MS;
      }
      if (elapsed >= nextRss) {
        rss.push([elapsed / 60_000, rssMb(agent.pid)]);
        nextRss += 1000;
      }
      if (elapsed >= nextInterval) {
        current.rssMb = rssMb(agent.pid);
        intervals.push(current);
        const sorted = [...current.latencies].sort((x, y) => x - y);
        log(
          `  t=${(elapsed / 1000).toFixed(0).padStart(4)} s  checks ${String(current.latencies.length).padStart(6)}  p50 ${percentile(sorted, 50).toFixed(2)} ms  p99 ${percentile(sorted, 99).toFixed(2)} ms  max ${percentile(sorted, 100).toFixed(2)} ms  errors ${current.errors}  rss ${current.rssMb.toFixed(1)} MB`,
        );
        current = { latencies: [], errors: 0, rssMb: 0 };
        nextInterval += INTERVAL_MS;
      }
      await new Promise((r) => setTimeout(r, tickMs));
    }
    await Promise.all(inFlight);
    if (current.latencies.length > 0) {
      current.rssMb = rssMb(agent.pid);
      intervals.push(current);
    }
    client.close();
    const renewed = agent.lines.filter((l) => l.msg === 'SVID renewed').length - renewedBefore;
    const loaded = agent.lines.filter((l) => l.msg === 'policy set loaded').length - 1;
    // The slope after the first interval (start-up and JIT warm-up are not a leak).
    const steady = rss.filter(([m]) => m * 60_000 >= INTERVAL_MS);
    const rssSlope = slope(steady.length >= 2 ? steady : rss);
    const p99s = intervals.map((i) => percentile([...i.latencies].sort((x, y) => x - y), 99));
    const all = intervals.flatMap((i) => i.latencies).sort((x, y) => x - y);
    log(`sent ${sent}, answered ${answered}, errors ${errors}, over ${ENVOY_TIMEOUT_MS} ms ${late}, matching neither policy set ${mismatched}`);
    log(`policy swaps ${swaps} (reloads logged by the agent ${loaded}), rotations signalled ${rotations} (SVID renewed ${renewed})`);
    log(`p99 per interval (ms): ${p99s.map((p) => p.toFixed(2)).join(', ')}; overall p50 ${percentile(all, 50).toFixed(2)} ms, p99 ${percentile(all, 99).toFixed(2)} ms`);
    log(`agent RSS ${rss[0]?.[1].toFixed(1)} MB -> ${rss.at(-1)?.[1].toFixed(1)} MB, slope ${rssSlope.toFixed(3)} MB/min after the first interval`);
    for (const m of mismatchExamples) log(`  example: ${m}`);
    log(
      JSON.stringify({
        bench: 'soak',
        duration_s: DURATION_MS / 1000,
        rate: RATE,
        sent,
        answered,
        errors,
        over_200ms: late,
        mismatched,
        policy_swaps: swaps,
        policy_reloads: loaded,
        rotations_signalled: rotations,
        svid_renewed: renewed,
        p99_ms_per_interval: p99s.map((p) => Number(p.toFixed(3))),
        p99_ms: Number(percentile(all, 99).toFixed(3)),
        p99_last_to_first: Number(((p99s.at(-1) ?? NaN) / (p99s[0] ?? NaN)).toFixed(3)),
        rss_mb_start: Number((rss[0]?.[1] ?? NaN).toFixed(1)),
        rss_mb_end: Number((rss.at(-1)?.[1] ?? NaN).toFixed(1)),
        rss_slope_mb_per_min: Number(rssSlope.toFixed(3)),
      }),
    );
    agent.signal('SIGTERM');
    await agent.exited;
    ca.signal('SIGTERM');
    await ca.exited;
  } finally {
    for (const p of procs) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();

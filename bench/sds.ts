/**
 * `npm run bench:sds`: how fast a rotation reaches every SDS stream, and what an idle stream costs.
 *
 * The server runs in a child process (bench/sds-harness.ts) so that its RSS is its own; this
 * process is the Envoy side: N streams on "default", spread over a few connections, each response
 * checked and ACKed. By default the streams are spoken over node:http2 (bench/sds-lean-client.ts),
 * because the grpc-js client stack costs several times what the server does per message and would
 * measure itself; --client grpc-js uses the Envoy-like test client instead.
 *
 * Push latency: from the moment the harness publishes a new SVID to the moment the last of the N
 * streams has received it (timestamps across processes: performance.timeOrigin + now()).
 * Baselines, measured in the same run with rotations taken in turn on each server: the same
 * clients against a bare grpc-js server that writes one pre-encoded response to every stream (the
 * grpc-js floor; the ratio is meshid / bare), and against a raw node:http2 server that writes one
 * pre-framed message to every stream (the floor below grpc-js: what any Node write path could do).
 * Also printed: the server's own pass over the streams (from its push hook), which separates the
 * server's cost from the clients' (on 2 cores the N clients in one process weigh on the total).
 * Memory: the SDS server's RSS with no stream, and with 1,000 idle streams; then the same for the
 * real `meshid agent` process (started with `meshid ca`, as an operator would), which is the
 * figure the targets apply to (idle_rss_mb, bytes_per_idle_stream).
 *
 * Flags: --rotations N (default 50; 30 at 1,000 streams), --connections K (default 10),
 *        --client lean|grpc-js (default lean), --quick (20 rotations, to check the benchmark works),
 *        --streams 1000 --modes sds (one case only),
 *        --profile (`npm run bench:sds-profile`: CPU profiles of every server process and of the
 *        client over the measured rotations, each printed as who the time went to, see
 *        bench/sds-profile.ts; profiling slows everything, so its latencies are not the figures;
 *        --profile-dir DIR keeps the .cpuprofile files).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SdsClient, type SecretWatch } from '../test/helpers/sds-client.js';
import { openLeanFleet, type SdsFleet } from './sds-lean-client.js';
import { startAgentProcesses } from './sds-agent-process.js';
import { forkHarness, type SdsServerUnderTest } from './sds-server-process.js';
import { attribute, type CpuProfile, formatAttribution, startProfiler } from './sds-profile.js';

const STREAM_COUNTS: readonly number[] = flag('streams')?.split(',').map(Number) ?? [1, 100, 1000];
type Mode = 'sds' | 'bare' | 'raw';
const MODES = (flag('modes')?.split(',') ?? ['sds', 'bare', 'raw']) as Mode[];
for (const m of MODES) if (m !== 'sds' && m !== 'bare' && m !== 'raw') throw new Error(`--modes takes sds, bare and raw, not ${m}`);
const TARGET_P99_MS: Record<number, number> = { 100: 10, 1000: 25 }; // issue 13
const TARGET_BYTES_PER_STREAM = 30 * 1024;
const TARGET_IDLE_RSS_MB = 80;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}
const quick = process.argv.includes('--quick');
const profile = process.argv.includes('--profile');
const connectionsFlag = Number(flag('connections') ?? 10);
const rotationsFlag = flag('rotations') === undefined ? undefined : Number(flag('rotations'));
const clientFlag = flag('client') ?? 'lean';
if (clientFlag !== 'lean' && clientFlag !== 'grpc-js') throw new Error(`--client must be lean or grpc-js, not ${clientFlag}`);

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** N streams on "default" over K Envoy-like grpc-js clients; connections open in batches of 100 streams (listen backlog). */
async function openGrpcFleet(socketPath: string, streams: number, connections: number): Promise<SdsFleet> {
  const clients = Array.from({ length: Math.min(streams, connections) }, (_, i) =>
    new SdsClient({ socketPath, node: { id: `sidecar~10.0.0.${i}~bench.default~default.svc.cluster.local`, cluster: 'bench' }, shallow: true, reconnect: false }),
  );
  const watches: SecretWatch[] = [];
  for (let i = 0; i < streams; i += 100) {
    const batch = Array.from({ length: Math.min(100, streams - i) }, (_, j) => clients[(i + j) % clients.length]!.subscribe('default'));
    await Promise.all(batch.map((w) => w.waitFor(() => true, 30_000)));
    watches.push(...batch);
  }
  const errors: string[] = [];
  return {
    size: streams,
    errors,
    onUpdate(listener) {
      const offs = watches.map((w) => w.onUpdate((s) => listener(s.version, s.receivedAt)));
      return () => offs.forEach((off) => off());
    },
    close() {
      for (const w of watches) errors.push(...w.protocolErrors, ...w.nacks.map((n) => n.message));
      clients.forEach((c) => c.close());
    },
  };
}

function openFleet(socketPath: string, streams: number): Promise<SdsFleet> {
  return clientFlag === 'lean' ? openLeanFleet(socketPath, streams, connectionsFlag) : openGrpcFleet(socketPath, streams, connectionsFlag);
}

/** Rotates once and resolves with the time until every watch had the new version, and the server's pass time. */
function measureRotation(server: SdsServerUnderTest, fleet: SdsFleet): Promise<{ deliveredMs: number; passMs: number; cpuUs: number; clientCpuUs: number }> {
  return new Promise((resolve, reject) => {
    const clientCpuAtStart = process.cpuUsage();
    let target: string | undefined;
    let publishedAt = 0;
    let passMs = NaN;
    let cpuUs = NaN;
    let last = 0;
    let count = 0;
    const early: Array<{ version: string; at: number }> = [];
    const timer = setTimeout(() => reject(new Error(`rotation not received by every stream within 30 s (${count}/${fleet.size})`)), 30_000);
    const arrive = (version: string, at: number) => {
      if (target === undefined) return void early.push({ version, at });
      if (version !== target) return;
      last = Math.max(last, at);
      if (++count === fleet.size) {
        clearTimeout(timer);
        unsubscribe();
        const c = process.cpuUsage(clientCpuAtStart);
        resolve({ deliveredMs: last - publishedAt, passMs, cpuUs, clientCpuUs: c.user + c.system });
      }
    };
    const unsubscribe = fleet.onUpdate(arrive);
    void server.rotate().then((r) => {
      target = r.version;
      publishedAt = r.at;
      passMs = r.passMs;
      cpuUs = r.cpuUs;
      for (const e of early.splice(0)) arrive(e.version, e.at);
    }, reject);
  });
}

interface RunResult {
  readonly streams: number;
  readonly rotations: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly passP50: number;
  readonly passP99: number;
  /** The server's CPU time per rotation per stream (the push and the ACKs it brings back), in microseconds. */
  readonly cpuUsPerStream: number;
  /** The client process's CPU time from the rotation request to the last stream's receipt, per stream. */
  readonly clientCpuUsPerStream: number;
}

function summarise(streams: number, samples: number[], passes: number[], cpu: number[], clientCpu: number[]): RunResult {
  // CPU from one rotation to the next (the other servers rotate in between; this one is idle then).
  const cpuUsPerStream = cpu.length < 2 ? NaN : (cpu.at(-1)! - cpu[0]!) / (cpu.length - 1) / streams;
  samples.sort((x, y) => x - y);
  passes.sort((x, y) => x - y);
  return {
    streams,
    rotations: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples.at(-1)!,
    passP50: percentile(passes, 50),
    passP99: percentile(passes, 99),
    cpuUsPerStream,
    clientCpuUsPerStream: clientCpu.reduce((a, b) => a + b, 0) / clientCpu.length / streams,
  };
}

/**
 * Rotations on every server in turn (a, b, c, a, b, c, ...), so that the load other processes put
 * on a shared machine falls on all of them alike and the same-run ratios mean something.
 */
async function runPushes(targets: ReadonlyArray<{ mode: Mode; server: SdsServerUnderTest; fleet: SdsFleet }>, rotations: number, profileDir?: string): Promise<RunResult[]> {
  for (let i = 0; i < 3; i++) {
    for (const { server, fleet } of targets) {
      await measureRotation(server, fleet); // warm-up
      await sleep(10);
    }
  }
  const samples = targets.map(() => [] as number[]);
  const passes = targets.map(() => [] as number[]);
  const cpu = targets.map(() => [] as number[]);
  const clientCpu = targets.map(() => [] as number[]);
  // Profiling: every server process and this (client) process, over the measured rotations only.
  const clientProfiler = profileDir === undefined ? undefined : await startProfiler();
  if (profileDir !== undefined) for (const { server } of targets) await server.startProfile();
  for (let i = 0; i < rotations; i++) {
    for (const [k, { server, fleet }] of targets.entries()) {
      const m = await measureRotation(server, fleet);
      samples[k]!.push(m.deliveredMs);
      passes[k]!.push(m.passMs);
      cpu[k]!.push(m.cpuUs);
      clientCpu[k]!.push(m.clientCpuUs);
      await sleep(10); // let the ACKs drain before the next rotation
    }
  }
  if (profileDir !== undefined) {
    const clientProfile = await clientProfiler!.stop();
    const streamPushes = rotations * targets[0]!.fleet.size;
    for (const { mode, server } of targets) {
      const file = path.join(profileDir, `${mode}-${targets[0]!.fleet.size}.cpuprofile`);
      await server.stopProfile(file);
      process.stdout.write(formatAttribution(`${MODE_NAMES[mode]} server process, ${targets[0]!.fleet.size} streams`, attribute(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile), streamPushes));
    }
    // The client serves every server's streams; its profile covers all of them.
    process.stdout.write(formatAttribution(`client process (lean Envoy-side streams, all ${targets.length} servers)`, attribute(clientProfile), streamPushes * targets.length));
  }
  return targets.map((t, k) => summarise(t.fleet.size, samples[k]!, passes[k]!, cpu[k]!, clientCpu[k]!));
}

const MODE_NAMES: Record<Mode, string> = { sds: 'meshid SDS', bare: 'bare grpc-js', raw: 'raw node:http2' };

async function waitStreams(server: SdsServerUnderTest, n: number): Promise<{ rss: number }> {
  for (let i = 0; i < 100; i++) {
    const m = await server.memory();
    if (m.streams === n) return m;
    await sleep(50);
  }
  throw new Error(`server still holds streams other than ${n}`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bench-sds-'));
  const results: Record<Mode, RunResult[]> = { sds: [], bare: [], raw: [] };
  let idleRss = 0;
  let rss1000 = 0;
  const servers = new Map<Mode, SdsServerUnderTest>();
  try {
    for (const mode of MODES) servers.set(mode, await forkHarness(path.join(dir, `${mode}.sock`), mode));
    const sds = servers.get('sds');
    if (sds) idleRss = (await waitStreams(sds, 0)).rss;
    for (const n of STREAM_COUNTS) {
      const targets: Array<{ mode: Mode; server: SdsServerUnderTest; fleet: SdsFleet }> = [];
      try {
        for (const [mode, server] of servers) targets.push({ mode, server, fleet: await openFleet(server.socketPath, n) });
        if (sds && n === 1000) rss1000 = (await waitStreams(sds, 1000)).rss;
        const rotations = quick ? 20 : rotationsFlag ?? (n === 1000 ? 30 : 50);
        const runs = await runPushes(targets, rotations, profile ? flag('profile-dir') ?? dir : undefined);
        for (const [k, { mode }] of targets.entries()) {
          const r = runs[k]!;
          results[mode].push(r);
          process.stdout.write(
            `${mode.padEnd(4)} ${String(n).padStart(5)} streams: delivered to all p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(2)} ms; ` +
              `server pass p50 ${r.passP50.toFixed(2)} ms, p99 ${r.passP99.toFixed(2)} ms; server CPU ${r.cpuUsPerStream.toFixed(1)} us per stream per push, client CPU ${r.clientCpuUsPerStream.toFixed(1)} us (${r.rotations} rotations)\n`,
          );
        }
      } finally {
        for (const { fleet } of targets) fleet.close();
      }
      for (const { mode, server, fleet } of targets) {
        if (fleet.errors.length > 0) throw new Error(`${mode}, ${n} streams: ${fleet.errors.length} problems, first: ${fleet.errors[0]}`);
        await waitStreams(server, 0);
      }
    }
  } finally {
    for (const server of servers.values()) await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  if (flag('streams') !== undefined || flag('modes') !== undefined || profile) {
    // A partial run (for profiling one case): the per-run lines above, and their figures.
    const partial: Record<string, number> = {};
    for (const mode of MODES) for (const r of results[mode]) Object.assign(partial, { [`${mode}_p50_ms_${r.streams}`]: round(r.p50), [`${mode}_p99_ms_${r.streams}`]: round(r.p99), [`${mode}_pass_p99_ms_${r.streams}`]: round(r.passP99, 3), [`${mode}_cpu_us_per_stream_${r.streams}`]: round(r.cpuUsPerStream, 1), [`${mode}_client_cpu_us_per_stream_${r.streams}`]: round(r.clientCpuUsPerStream, 1) });
    process.stdout.write(`${JSON.stringify({ client: clientFlag, connections: connectionsFlag, partial: true, profiled: profile, ...partial })}\n`);
    return;
  }

  // The real agent: its RSS idle (after a settle) and with 1,000 idle streams.
  const agentDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bench-agent-'));
  let agentIdle = 0;
  let agent1000 = 0;
  try {
    const agent = await startAgentProcesses(agentDir);
    try {
      await sleep(3000);
      agentIdle = agent.rss();
      const fleet = await openFleet(agent.socketPath, 1000);
      await sleep(3000);
      agent1000 = agent.rss();
      fleet.close();
      if (fleet.errors.length > 0) throw new Error(`agent, 1000 streams: ${fleet.errors.length} problems, first: ${fleet.errors[0]}`);
    } finally {
      await agent.close();
    }
  } finally {
    fs.rmSync(agentDir, { recursive: true, force: true });
  }
  const agentBytesPerStream = (agent1000 - agentIdle) / 1000;

  const bytesPerStream = (rss1000 - idleRss) / 1000;
  const figures: Record<string, number | boolean | string> = { client: clientFlag, connections: connectionsFlag };
  process.stdout.write('\nstreams   meshid p50/p99 ms   bare grpc-js p50/p99   raw http2 p50/p99   p99 vs bare / vs raw   target p99\n');
  STREAM_COUNTS.forEach((n, i) => {
    const s = results.sds[i]!;
    const b = results.bare[i]!;
    const r = results.raw[i]!;
    const target = TARGET_P99_MS[n];
    const pair = (x: RunResult) => `${x.p50.toFixed(2)} / ${x.p99.toFixed(2)}`;
    process.stdout.write(
      `${String(n).padStart(7)}   ${pair(s).padEnd(18)}  ${pair(b).padEnd(21)}  ${pair(r).padEnd(18)}  ${`${(s.p99 / b.p99).toFixed(2)} / ${(s.p99 / r.p99).toFixed(2)}`.padEnd(21)}  ${target ? `< ${target} ms ${s.p99 < target ? 'met' : 'MISSED'}` : '-'}\n`,
    );
    figures[`push_p50_ms_${n}`] = round(s.p50);
    figures[`push_p99_ms_${n}`] = round(s.p99);
    figures[`bare_push_p50_ms_${n}`] = round(b.p50);
    figures[`bare_push_p99_ms_${n}`] = round(b.p99);
    figures[`raw_push_p99_ms_${n}`] = round(r.p99);
    figures[`ratio_p99_${n}`] = round(s.p99 / b.p99);
    figures[`ratio_raw_p99_${n}`] = round(s.p99 / r.p99);
    figures[`server_pass_p99_ms_${n}`] = round(s.passP99, 3);
    figures[`bare_server_pass_p99_ms_${n}`] = round(b.passP99, 3);
    figures[`raw_server_pass_p99_ms_${n}`] = round(r.passP99, 3);
    figures[`server_cpu_us_per_stream_${n}`] = round(s.cpuUsPerStream, 1);
    figures[`bare_server_cpu_us_per_stream_${n}`] = round(b.cpuUsPerStream, 1);
    figures[`raw_server_cpu_us_per_stream_${n}`] = round(r.cpuUsPerStream, 1);
    figures[`client_cpu_us_per_stream_${n}`] = round(s.clientCpuUsPerStream, 1);
    figures[`rotations_${n}`] = s.rotations;
  });
  // Server CPU per extra stream, from the 100- and 1,000-stream runs: what a push costs per stream
  // once the per-rotation constant (timers, IPC, the rotation's garbage) is taken out.
  const i100 = STREAM_COUNTS.indexOf(100);
  const i1000 = STREAM_COUNTS.indexOf(1000);
  const marginal = (r: RunResult[]) => (r[i1000]!.cpuUsPerStream * 1000 - r[i100]!.cpuUsPerStream * 100) / 900;
  if (i100 !== -1 && i1000 !== -1) {
    const [ms, mb, mr] = [marginal(results.sds), marginal(results.bare), marginal(results.raw)];
    process.stdout.write(
      `\nserver CPU per extra stream per push (100 -> 1,000 streams): meshid ${ms.toFixed(1)} us, bare grpc-js ${mb.toFixed(1)} us, raw node:http2 ${mr.toFixed(1)} us ` +
        `(meshid / bare ${(ms / mb).toFixed(2)}, bare / raw ${(mb / mr).toFixed(2)})\n`,
    );
    Object.assign(figures, { server_cpu_us_per_extra_stream: round(ms, 1), bare_cpu_us_per_extra_stream: round(mb, 1), raw_cpu_us_per_extra_stream: round(mr, 1), cpu_ratio_vs_bare: round(ms / mb), cpu_ratio_bare_vs_raw: round(mb / mr) });
  }
  process.stdout.write(
    `\nSDS harness process RSS (after GC): ${(idleRss / 2 ** 20).toFixed(1)} MB idle, ${(rss1000 / 2 ** 20).toFixed(1)} MB with 1,000 idle streams: ` +
      `${Math.round(bytesPerStream)} bytes per idle stream\n`,
  );
  process.stdout.write(
    `meshid agent process RSS: ${(agentIdle / 2 ** 20).toFixed(1)} MB idle (target < ${TARGET_IDLE_RSS_MB} MB), ${(agent1000 / 2 ** 20).toFixed(1)} MB with 1,000 idle streams: ` +
      `${Math.round(agentBytesPerStream)} bytes per idle stream (target < ${TARGET_BYTES_PER_STREAM})\n`,
  );
  figures.idle_rss_mb = round(agentIdle / 2 ** 20, 1);
  figures.rss_1000_streams_mb = round(agent1000 / 2 ** 20, 1);
  figures.bytes_per_idle_stream = Math.round(agentBytesPerStream);
  figures.harness_idle_rss_mb = round(idleRss / 2 ** 20, 1);
  figures.harness_bytes_per_idle_stream = Math.round(bytesPerStream);
  figures.targets_met =
    results.sds[1]!.p99 < TARGET_P99_MS[100]! &&
    results.sds[2]!.p99 < TARGET_P99_MS[1000]! &&
    agentBytesPerStream < TARGET_BYTES_PER_STREAM &&
    agentIdle / 2 ** 20 < TARGET_IDLE_RSS_MB;
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

await main();

/**
 * `npm run bench:ca-fleet [-- --clients C --seconds S]`: issuance under many concurrent clients
 * against one `meshid ca` process and against three replicas sharing one state directory (made
 * read-only after the first start, as a mounted Kubernetes Secret is), all real processes on
 * loopback.
 *
 * C clients (default 48), each its own CaClient (one TLS connection, as one agent has), spread
 * round-robin over the replicas (as a Service spreads connections), each issuing back to back for
 * S seconds (default 8) per phase, with distinct pre-generated EC P-256 CSRs. The phases run
 * one, three, one, three (so that the load other processes put on a shared machine falls on both
 * alike); each figure is the mean over its phases. Reported: certificates/s, call latency p50
 * and p99, calls shed (RESOURCE_EXHAUSTED) or failed, and the ratio three / one.
 *
 * On a machine with fewer cores than replicas + 1 (the load generator is a process too) the
 * replicas share cores, so the ratio says what a second and third process cost or gain here, not
 * what three pods on three nodes do: it is printed with the core count. Last line: one JSON object.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CaClient } from '../src/ca/client.js';
import { createCsr } from '../src/identity/csr.js';
import { generateKeyPairSync } from '../src/identity/keys.js';
import { parseSpiffeId } from '../src/identity/spiffe-id.js';
import { nowMs } from '../test/helpers/sds-client.js';
import { MAIN, startCaProcess, stop, waitForLog } from './sds-agent-process.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} takes a positive number`);
  return v;
}
const CLIENTS = flag('clients', 48);
const SECONDS = flag('seconds', 8);
const CSR_POOL = 4000;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

interface Phase {
  readonly replicas: number;
  readonly certsPerS: number;
  readonly p50: number;
  readonly p99: number;
  readonly shed: number;
  readonly failed: number;
}

/** Issues back to back on every client until the time is up; counts what came back. */
async function phase(clients: readonly CaClient[], replicas: number, csrs: readonly string[], token: string): Promise<Phase> {
  const latencies: number[] = [];
  let shed = 0;
  let failed = 0;
  let firstError = '';
  let next = 0;
  const end = nowMs() + SECONDS * 1000;
  const started = nowMs();
  await Promise.all(
    clients.map(async (client) => {
      while (nowMs() < end) {
        const csr = csrs[next++ % csrs.length]!;
        const t0 = nowMs();
        const r = await client.createCertificate(csr, { kind: 'token', token });
        if (r.ok) latencies.push(nowMs() - t0);
        else if (r.grpcCode === 8) {
          shed++;
          await new Promise((res) => setTimeout(res, Math.min(r.retryAfterMs ?? 100, 100)));
        } else {
          failed++;
          firstError ||= r.message;
        }
      }
    }),
  );
  const elapsed = (nowMs() - started) / 1000;
  if (failed > 0) console.log(`    (${failed} calls failed with ${replicas} replica(s); first: ${firstError})`);
  latencies.sort((a, b) => a - b);
  return { replicas, certsPerS: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), shed, failed };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bench-ca-fleet-'));
  const closers: Array<() => Promise<void>> = [];
  const clients: CaClient[] = [];
  try {
    // No per-identity limit: every bench CSR is for the one identity the static token stands for.
    const limits = ['--issuance-rate', '0'];
    const first = await startCaProcess(dir, limits);
    closers.push(() => first.close());
    const id = parseSpiffeId(first.id);
    const token = fs.readFileSync(first.tokenPath, 'utf8').trim();
    const stateDir = path.join(dir, 'ca');
    // What an operator mounts from a Secret: the first start's files, read-only.
    for (const f of fs.readdirSync(stateDir)) fs.chmodSync(path.join(stateDir, f), 0o400);
    const addresses = [first.address];
    for (let i = 0; i < 2; i++) {
      const ca = spawn(process.execPath, [MAIN, 'ca', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--static-tokens', path.join(dir, 'tokens.yaml'), ...limits], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      closers.push(() => stop(ca));
      addresses.push(await waitForLog(ca, 'CA listening', (l) => (l.event === 'listening' ? String(l.address) : undefined)));
    }

    const t0 = nowMs();
    const csrs = Array.from({ length: CSR_POOL }, () => createCsr(id, generateKeyPairSync('ec-p256')).pem);
    console.log(`bench:ca-fleet  ${CLIENTS} concurrent clients, ${SECONDS} s per phase, ${CSR_POOL} distinct CSRs (generated in ${((nowMs() - t0) / 1000).toFixed(1)} s), ${os.cpus().length} cores`);
    const bundlePem = fs.readFileSync(first.bundlePath, 'utf8');
    const clientsFor = (n: number) =>
      Array.from({ length: CLIENTS }, (_, i) => new CaClient({ address: addresses[i % n]!, caBundlePem: bundlePem, serverName: 'localhost', deadlineMs: 10_000 }));
    const one = clientsFor(1);
    const three = clientsFor(3);
    clients.push(...one, ...three);
    // Warm-up: every connection set up (TLS), the CAs' first issuance done.
    await Promise.all([...one, ...three].map((c) => c.createCertificate(csrs[0]!, { kind: 'token', token })));

    const phases: Phase[] = [];
    for (const n of [1, 3, 1, 3]) {
      const p = await phase(n === 1 ? one : three, n, csrs, token);
      phases.push(p);
      console.log(`  ${n} replica${n === 1 ? ' ' : 's'}: ${p.certsPerS.toFixed(0).padStart(5)} certificates/s, p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, ${p.shed} shed, ${p.failed} failed`);
    }
    const of = (n: number) => phases.filter((p) => p.replicas === n);
    const summary = (n: number) => ({ certsPerS: mean(of(n).map((p) => p.certsPerS)), p50: mean(of(n).map((p) => p.p50)), p99: mean(of(n).map((p) => p.p99)) });
    const s1 = summary(1);
    const s3 = summary(3);
    const ratio = s3.certsPerS / s1.certsPerS;
    console.log(`  mean of phases: one ${s1.certsPerS.toFixed(0)} /s (p99 ${s1.p99.toFixed(1)} ms), three ${s3.certsPerS.toFixed(0)} /s (p99 ${s3.p99.toFixed(1)} ms): three / one = ${ratio.toFixed(2)}`);
    console.log(
      `  on ${os.cpus().length} cores shared by the load generator and the replicas, three processes cannot do three times the work; ` +
        'with a core per replica (and the clients elsewhere) throughput should grow with the replicas, as they share nothing but read-only files (not measured here)',
    );
    console.log(
      JSON.stringify({
        clients: CLIENTS,
        seconds_per_phase: SECONDS,
        cores: os.cpus().length,
        one_certs_per_s: Math.round(s1.certsPerS),
        one_p50_ms: round(s1.p50),
        one_p99_ms: round(s1.p99),
        three_certs_per_s: Math.round(s3.certsPerS),
        three_p50_ms: round(s3.p50),
        three_p99_ms: round(s3.p99),
        ratio_three_vs_one: round(ratio, 2),
        shed: phases.reduce((a, p) => a + p.shed, 0),
        failed: phases.reduce((a, p) => a + p.failed, 0),
      }),
    );
  } finally {
    for (const c of clients) c.close();
    for (const close of closers) await close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();

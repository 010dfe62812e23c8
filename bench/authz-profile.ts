/**
 * npm run bench:authz-profile [-- --mode meshid|meshid-nolog|baseline] [--requests N]
 *
 * Runs one bench Check server (authz-e2e-server.ts) under the V8 CPU profiler (the inspector's
 * Profiler, the one behind `node --cpu-prof`, started once the server is ready), sends it a bounded
 * number of Check requests with h2load, closes it, and prints the profile's top entries by self
 * time (function, file:line), so a change to the request path can be compared on CPU time, which a
 * shared machine distorts less than wall-clock throughput. Last line: one JSON object.
 */
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerMode, ServerReady } from './authz-e2e-server.js';
import { benchRequestBytes, grpcFrame } from './authz-e2e.js';
import { benchPolicyText } from './authz-fixtures.js';
import { printSelfTime, selfTime } from './cpu-profile.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const mode = arg('mode', 'meshid') as ServerMode;
  const requests = Number(arg('requests', '40000'));
  const top = Number(arg('top', '25'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-authz-profile-'));
  const policyDir = path.join(dir, 'policies');
  fs.mkdirSync(policyDir);
  fs.writeFileSync(path.join(policyDir, 'bench.yaml'), benchPolicyText(1_000));
  const body = path.join(dir, 'check.bin');
  fs.writeFileSync(body, grpcFrame(benchRequestBytes()));
  const profFile = path.join(dir, 'serving.cpuprofile');
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'authz-e2e-server.js');
  const child = fork(script, [mode, policyDir, path.join(dir, 's.sock')], {
    env: { ...process.env, BENCH_CPU_PROFILE: profFile },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await new Promise<ServerReady>((resolve, reject) => {
      child.once('message', (m) => resolve(m as ServerReady));
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const out = await new Promise<string>((resolve, reject) => {
      const h = spawn('h2load', ['-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', body, '-n', String(requests), '-c', '4', '-m', '32', '-t', '1', `http://127.0.0.1:${ready.port}/envoy.service.auth.v3.Authorization/Check`]);
      let o = '';
      h.stdout.on('data', (b: Buffer) => (o += b.toString()));
      const timer = setTimeout(() => h.kill('SIGKILL'), 120_000);
      h.on('close', (code) => (clearTimeout(timer), code === 0 ? resolve(o) : reject(new Error(`h2load exited with ${code}`))));
    });
    const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1];
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.send({ cmd: 'close' });
    });
    const { busyUs: total, rows } = selfTime(profFile, top);
    console.log(`authz profile: mode ${mode}, ${requests} Check requests, h2load ${rps} req/s (noisy), busy CPU ${(total / 1000).toFixed(0)} ms = ${(total / requests).toFixed(2)} us per Check`);
    printSelfTime({ busyUs: total, rows }, requests, 'Check');
    console.log(JSON.stringify({ mode, requests, busy_us_per_check: Number((total / requests).toFixed(2)), h2load_per_s: rps ? Number(rps) : null }));
  } finally {
    if (child.exitCode === null) child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench:authz-profile failed: ${(e as Error).message}`);
  process.exitCode = 1;
});

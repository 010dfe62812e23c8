/**
 * npm run fuzz [-- --seconds N] [--match PATTERN]: every property of test/fuzz for N seconds each
 * (default FUZZ_SECONDS or 60), one at a time, then a table of runs per property. New
 * counterexamples are appended to test/fuzz/corpus/<property>.json. Last line: one JSON object.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
};
const seconds = Number(flag('seconds') ?? process.env.FUZZ_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`fuzz: --seconds must be a positive number (got ${flag('seconds') ?? process.env.FUZZ_SECONDS})`);
  process.exit(2);
}
const match = flag('match');
const here = path.dirname(fileURLToPath(import.meta.url));
const files = fs.readdirSync(here).filter((f) => f.endsWith('.test.js')).map((f) => path.join(here, f));
const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-fuzz-')), 'report.jsonl');
const started = Date.now();
const ava = spawnSync(process.execPath, [
  path.resolve(here, '../../../node_modules/ava/entrypoints/cli.mjs'), ...files, '--serial', '--concurrency', '1',
  '--timeout', `${Math.ceil(seconds) + 120}s`, ...(match ? ['--match', match] : []),
], { stdio: 'inherit', env: { ...process.env, FUZZ_SECONDS: String(seconds), FUZZ_REPORT: report } });
const lines = fs.existsSync(report) ? fs.readFileSync(report, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { property: string; runs: number; seconds: number; failed: boolean; seed: number }) : [];
console.log('\nproperty                              runs      seconds  runs/s   result');
for (const l of lines) {
  console.log(`${l.property.padEnd(36)} ${String(l.runs).padStart(9)} ${l.seconds.toFixed(1).padStart(8)} ${Math.round(l.runs / l.seconds).toString().padStart(8)}   ${l.failed ? `FAILED (seed ${l.seed})` : 'ok'}`);
}
fs.rmSync(path.dirname(report), { recursive: true, force: true });
const failed = lines.filter((l) => l.failed).map((l) => l.property);
console.log(JSON.stringify({ bench: 'fuzz', secondsPerProperty: seconds, totalSeconds: (Date.now() - started) / 1000, properties: lines.length, runs: Object.fromEntries(lines.map((l) => [l.property, l.runs])), failed, avaExit: ava.status }));
process.exit(ava.status ?? 1);

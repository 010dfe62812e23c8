/**
 * npm run bench:authz
 *
 * (a) Engine only: ns per decision (median, p99) with 10, 1,000 and 10,000 ALLOW rules over
 *     distinct principals and paths (plus DENY, AUDIT and dry-run policies), each decision timed
 *     on its own with the timer's own cost subtracted. Ratio: 10,000 rules against 10.
 * (a') The default-deny explanation: allowed requests and default-denied requests, each timed
 *     with the explanation on and off, interleaved in the same run. Ratios: allow path on/off
 *     (target 1: an allow never computes it) and default-deny path on/off (its cost).
 * (b) End to end over TCP and the Unix socket, against a bare grpc-js server: see authz-e2e.ts.
 * (c) The Check with bearer-token verification, in process: the same token (cache hit) and tokens
 *     that vary (more than the cache holds), each as a ratio to the plain Check: see authz-tokens.ts.
 *
 * Flags: --quick (short runs, to check the benchmark works), --engine-only.
 *
 * Prints the figures, then, as the last line, one JSON object with them. Bounded: a few seconds.
 */
import { evaluate } from '../src/authz/engine.js';
import type { AuthzInput } from '../src/authz/facts.js';
import { runEndToEnd, type EndToEndResult } from './authz-e2e.js';
import { benchInputs, compileBenchSet } from './authz-fixtures.js';
import { runTokenBench, TOKENS } from './authz-tokens.js';

const RULE_COUNTS = [10, 1_000, 10_000] as const;

interface EngineFigures {
  readonly rules: number;
  readonly medianNs: number;
  readonly p99Ns: number;
  readonly allowed: number;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function timerOverheadNs(samples: number): number {
  const t = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const a = process.hrtime.bigint();
    t[i] = Number(process.hrtime.bigint() - a);
  }
  return quantile(t.sort(), 0.5);
}

function benchEngine(rules: number, samples: number, overhead: number): EngineFigures {
  const set = compileBenchSet(rules);
  const inputs = benchInputs(rules, 4096);
  let allowed = 0;
  for (let i = 0; i < 50_000; i++) if (evaluate(set, inputs[i & 4095]!).allow) allowed++; // warm-up
  allowed = 0;
  const t = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const input = inputs[i & 4095]!;
    const a = process.hrtime.bigint();
    const d = evaluate(set, input);
    t[i] = Math.max(0, Number(process.hrtime.bigint() - a) - overhead);
    if (d.allow) allowed++;
  }
  t.sort();
  return { rules, medianNs: quantile(t, 0.5), p99Ns: quantile(t, 0.99), allowed: allowed / samples };
}

interface ExplainFigures {
  readonly rules: number;
  readonly allowOnNs: number;
  readonly allowOffNs: number;
  readonly denyOnNs: number;
  readonly denyOffNs: number;
}

/** Median ns of evaluate with the explanation on and off, alternating, over the same inputs. */
function onOff(set: ReturnType<typeof compileBenchSet>, inputs: readonly AuthzInput[], samples: number, overhead: number): [number, number] {
  const on = new Float64Array(samples >> 1);
  const off = new Float64Array(samples >> 1);
  const OFF = { explain: false } as const;
  for (let i = 0; i < 20_000; i++) evaluate(set, inputs[i % inputs.length]!, i & 1 ? OFF : undefined); // warm-up
  for (let i = 0; i < samples; i++) {
    // A different request each time, on and off in turn: neither warms the caches for the other.
    const input = inputs[(i * 7919) % inputs.length]!;
    const a = process.hrtime.bigint();
    evaluate(set, input, i & 1 ? OFF : undefined);
    (i & 1 ? off : on)[i >> 1] = Math.max(0, Number(process.hrtime.bigint() - a) - overhead);
  }
  return [quantile(on.sort(), 0.5), quantile(off.sort(), 0.5)];
}

function benchExplain(rules: number, samples: number, overhead: number): ExplainFigures {
  const set = compileBenchSet(rules);
  const all = benchInputs(rules, 4096);
  const allowed = all.filter((i) => evaluate(set, i).allow);
  const defaultDenied = all.filter((i) => evaluate(set, i).reason === 'no_allow_policy_matched');
  if (allowed.length === 0 || defaultDenied.length === 0) throw new Error('bench inputs: need allowed and default-denied requests');
  const [allowOnNs, allowOffNs] = onOff(set, allowed, samples, overhead);
  const [denyOnNs, denyOffNs] = onOff(set, defaultDenied, samples, overhead);
  return { rules, allowOnNs, allowOffNs, denyOnNs, denyOffNs };
}

async function main(): Promise<void> {
  const args = new Set(process.argv.slice(2));
  const samples = args.has('--quick') ? 50_000 : 300_000;
  const overhead = timerOverheadNs(100_000);
  console.log(`engine: ns per decision, ${samples} decisions each, timer overhead ${overhead} ns subtracted`);
  const engine: EngineFigures[] = [];
  for (const rules of RULE_COUNTS) {
    const f = benchEngine(rules, samples, overhead);
    engine.push(f);
    console.log(`  ${String(rules).padStart(6)} rules: median ${f.medianNs} ns, p99 ${f.p99Ns} ns (${(f.allowed * 100).toFixed(0)} % allowed)`);
  }
  const e10 = engine[0]!;
  const e10k = engine[2]!;
  const flatness = e10k.medianNs / Math.max(1, e10.medianNs);
  console.log(`  median at 10,000 rules / median at 10 rules: ${flatness.toFixed(2)} (target: near 1; median under 5,000 ns)`);

  console.log('default-deny explanation: median ns, explanation on / off, interleaved');
  const explain: ExplainFigures[] = [];
  for (const rules of [10, 10_000]) {
    const x = benchExplain(rules, samples / 5, overhead);
    explain.push(x);
    console.log(
      `  ${String(rules).padStart(6)} rules: allow ${x.allowOnNs} / ${x.allowOffNs} ns (ratio ${(x.allowOnNs / Math.max(1, x.allowOffNs)).toFixed(2)}), default deny ${x.denyOnNs} / ${x.denyOffNs} ns (+${x.denyOnNs - x.denyOffNs} ns)`,
    );
  }
  const ratio = (a: number, b: number) => Number((a / Math.max(1, b)).toFixed(3));

  console.log(`Check with token verification, in process (1,000 rules, ES256, ${TOKENS} distinct tokens for the varying row): mean us per decision`);
  const tok = await runTokenBench({ quick: args.has('--quick') });
  const perPlain = (us: number) => Number((us / tok.plainUs).toFixed(3));
  console.log(`  plain Check ${tok.plainUs} us; same token (cache hit) ${tok.cachedUs} us, ratio ${perPlain(tok.cachedUs)}; tokens varying (every one verified) ${tok.varyingUs} us, ratio ${perPlain(tok.varyingUs)}`);

  let e2e: EndToEndResult | undefined;
  if (!args.has('--engine-only')) e2e = await runEndToEnd({ quick: args.has('--quick'), log: (s) => console.log(s) });

  console.log(
    JSON.stringify({
      engine_ns_median_10: e10.medianNs,
      engine_ns_p99_10: e10.p99Ns,
      engine_ns_median_1000: engine[1]!.medianNs,
      engine_ns_p99_1000: engine[1]!.p99Ns,
      engine_ns_median_10000: e10k.medianNs,
      engine_ns_p99_10000: e10k.p99Ns,
      engine_ratio_10000_to_10: Number(flatness.toFixed(3)),
      ...Object.fromEntries(
        explain.flatMap((x) => [
          [`explain_allow_ratio_on_off_${x.rules}`, ratio(x.allowOnNs, x.allowOffNs)],
          [`explain_deny_ns_on_${x.rules}`, x.denyOnNs],
          [`explain_deny_ns_off_${x.rules}`, x.denyOffNs],
        ]),
      ),
      token_us_plain: tok.plainUs,
      token_us_cached: tok.cachedUs,
      token_us_varying: tok.varyingUs,
      token_ratio_cached: perPlain(tok.cachedUs),
      token_ratio_varying: perPlain(tok.varyingUs),
      ...(e2e ? e2e.figures : {}),
    }),
  );
}

main().catch((e: unknown) => {
  console.error(`bench:authz failed: ${(e as Error).message}`);
  process.exitCode = 1;
});

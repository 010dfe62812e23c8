/**
 * Reading V8 CPU profiles (`node --cpu-prof`, or the inspector's Profiler) for the benchmarks:
 * self time per function (name, file:line), busiest first.
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** Total busy time (idle, program and GC excluded unless asked), in microseconds. */
  readonly busyUs: number;
  /** [function file:line, microseconds], busiest first. */
  readonly rows: ReadonlyArray<readonly [string, number]>;
}

export function selfTime(file: string, top = 25): SelfTime {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const dt = profile.timeDeltas[i] ?? 0;
    if (f.functionName === '(idle)' || f.functionName === '(program)') return;
    const where = f.url ? `${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    busyUs += dt;
  });
  return { busyUs, rows: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top) };
}

/** Prints the rows with their share of busy time and their cost per unit of work (e.g. per Check). */
export function printSelfTime(t: SelfTime, perUnit: number, unit: string): void {
  for (const [key, us] of t.rows) console.log(`  ${((us / t.busyUs) * 100).toFixed(1).padStart(5)} %  ${(us / perUnit).toFixed(2).padStart(7)} us/${unit}  ${key}`);
}

/** `node dist/bench/cpu-profile.js FILE [top]`: the self-time table of one profile. */
if (process.argv[1]?.endsWith('cpu-profile.js') && process.argv[2]) {
  const t = selfTime(process.argv[2], Number(process.argv[3] ?? 30));
  console.log(`busy ${(t.busyUs / 1000).toFixed(0)} ms`);
  printSelfTime(t, 1, 'total');
}

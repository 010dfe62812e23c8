/**
 * CPU profiles for `npm run bench:sds-profile` (bench/sds.ts --profile): taken with the inspector
 * over the measured rotations only (not the stream set-up or the warm-up), in the SDS server
 * processes and in the client process, and attributed to whose code the time is spent in.
 *
 * Each sample is given an owner by walking its stack from the leaf up to the first frame that is
 * meshid's code (dist/src), grpc-js (and its own dependencies), node:http2's JavaScript, or the
 * benchmark's (dist/bench, dist/test: issuing the test SVID, the lean client). Library frames on
 * the way (protobufjs, node's streams, events, buffers, timers, C++ bindings such as writeBuffer)
 * count for the owner that called them: protobufjs decoding an ACK under meshid's deserializer is
 * meshid's, a Buffer copy under grpc-js's serializeMessage is grpc-js's. Samples with no JS frame
 * are V8's garbage collector, or "(program)": native work entered from the event loop (nghttp2
 * parsing and framing, libuv, system calls) before any JS runs. Idle samples are left out.
 */
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Starts the inspector's sampling profiler in this process; stop() returns the profile. */
export async function startProfiler(intervalUs = 100): Promise<{ stop(): Promise<CpuProfile> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      await session.post('Profiler.disable');
      session.disconnect();
      return profile as unknown as CpuProfile;
    },
  };
}

export type Owner = 'meshid' | 'grpc-js' | 'node:http2' | 'bench' | 'GC' | 'native (program)' | 'other';
const OWNERS: readonly Owner[] = ['meshid', 'grpc-js', 'node:http2', 'bench', 'GC', 'native (program)', 'other'];

function ownerOfFrame(url: string): Owner | undefined {
  if (url.includes('/node_modules/@grpc/grpc-js/') || url.includes('/node_modules/@js-sdsl/')) return 'grpc-js';
  if (url.includes('/node_modules/')) return undefined; // protobufjs and the like: counted for their caller
  if (url.includes('/dist/src/')) return 'meshid';
  if (url.includes('/dist/bench/') || url.includes('/dist/test/')) return 'bench';
  if (url.startsWith('node:internal/http2/')) return 'node:http2';
  return undefined;
}

/** Where a leaf frame's code lives, for the second table. */
function layerOfFrame(functionName: string, url: string): string {
  if (functionName === '(garbage collector)') return 'V8 GC';
  if (functionName === '(program)') return 'native, no JS frame (nghttp2, libuv, syscalls)';
  if (url === '') return 'C++ bindings called from JS (socket writes, buffers)';
  if (url.includes('/node_modules/@grpc/grpc-js/') || url.includes('/node_modules/@js-sdsl/')) return 'grpc-js';
  if (url.includes('/node_modules/protobufjs/') || url.includes('/node_modules/@protobufjs/')) return 'protobufjs';
  if (url.includes('/node_modules/')) return 'other npm packages';
  if (url.includes('/dist/src/')) return 'meshid';
  if (url.includes('/dist/bench/') || url.includes('/dist/test/')) return 'bench';
  if (url.startsWith('node:internal/http2/')) return 'node:http2 JS';
  if (url.startsWith('node:internal/streams/') || url.startsWith('node:stream')) return 'node streams';
  if (url.startsWith('node:')) return 'node core (events, buffer, timers, ticks)';
  return 'other';
}

export interface Attribution {
  /** Busy time (idle left out), microseconds. */
  readonly busyUs: number;
  readonly byOwner: ReadonlyArray<readonly [Owner, number]>;
  readonly byLayer: ReadonlyArray<readonly [string, number]>;
  /** [function file:line, owner, self microseconds], busiest first. */
  readonly top: ReadonlyArray<readonly [string, Owner, number]>;
}

export function attribute(profile: CpuProfile, top = 15): Attribution {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ownerCache = new Map<number, Owner>();
  const ownerOf = (id: number): Owner => {
    const cached = ownerCache.get(id);
    if (cached) return cached;
    const f = byId.get(id)!.callFrame;
    let owner: Owner;
    if (f.functionName === '(garbage collector)') owner = 'GC';
    else if (f.functionName === '(program)') owner = 'native (program)';
    else {
      const own = ownerOfFrame(f.url);
      const up = parent.get(id);
      owner = own ?? (up === undefined || byId.get(up)!.callFrame.functionName === '(root)' ? 'other' : ownerOf(up));
    }
    ownerCache.set(id, owner);
    return owner;
  };
  const owners = new Map<Owner, number>(OWNERS.map((o) => [o, 0]));
  const layers = new Map<string, number>();
  const fns = new Map<string, { owner: Owner; us: number }>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') return;
    const dt = profile.timeDeltas[i] ?? 0;
    busyUs += dt;
    const owner = ownerOf(id);
    owners.set(owner, owners.get(owner)! + dt);
    const layer = layerOfFrame(f.functionName, f.url);
    layers.set(layer, (layers.get(layer) ?? 0) + dt);
    const where = f.url ? ` ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}${where}`;
    const e = fns.get(`${key}\0${owner}`) ?? { owner, us: 0 };
    e.us += dt;
    fns.set(`${key}\0${owner}`, e);
  });
  const desc = <T>(m: Map<T, number>) => [...m.entries()].filter(([, us]) => us > 0).sort((a, b) => b[1] - a[1]);
  return {
    busyUs,
    byOwner: desc(owners),
    byLayer: desc(layers),
    top: [...fns.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, top).map(([k, v]) => [k.split('\0')[0]!, v.owner, v.us] as const),
  };
}

/** The three tables, with each row's share of busy time and its cost per stream per push. */
export function formatAttribution(title: string, a: Attribution, streamPushes: number): string {
  const row = (us: number) => `${((us / a.busyUs) * 100).toFixed(1).padStart(5)} %  ${(us / streamPushes).toFixed(2).padStart(6)} us/stream-push`;
  const lines = [`${title}: busy ${(a.busyUs / 1000).toFixed(0)} ms over ${streamPushes} stream-pushes (${(a.busyUs / streamPushes).toFixed(2)} us each)`];
  lines.push('  by owner (the first meshid / grpc-js / node:http2 / bench frame up the stack):');
  for (const [o, us] of a.byOwner) lines.push(`    ${row(us)}  ${o}`);
  lines.push('  by where the leaf frame runs:');
  for (const [l, us] of a.byLayer) lines.push(`    ${row(us)}  ${l}`);
  lines.push('  top functions (self time, owner):');
  for (const [k, o, us] of a.top) lines.push(`    ${row(us)}  ${k}  [${o}]`);
  return `${lines.join('\n')}\n`;
}

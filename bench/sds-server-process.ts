/**
 * The server side of the SDS benchmark, seen from the client side: a process serving SDS on a
 * socket that can be told to rotate and asked for its RSS. Today it is bench/sds-harness.js; to
 * measure the real `meshid agent` instead, implement SdsServerUnderTest for it (socket from
 * --sds-socket, RSS from /proc/<pid>/status, rotation via a short --ttl or a CA-side trigger).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HarnessReply, HarnessRequest } from './sds-harness.js';

export interface SdsServerUnderTest {
  readonly socketPath: string;
  readonly pid: number;
  /**
   * Publishes a new SVID; resolves with its version, when it was published (epoch ms, sub-ms
   * precision), if the server can tell, how long its push pass took (NaN otherwise), and the
   * server process's CPU time so far (microseconds, read just before the rotation).
   */
  rotate(): Promise<{ version: string; at: number; passMs: number; cpuUs: number }>;
  /** RSS in bytes after GC, and the streams the server holds. */
  memory(): Promise<{ rss: number; streams: number }>;
  /** Starts the server process's CPU profiler; stopProfile writes what it sampled since to file. */
  startProfile(): Promise<void>;
  stopProfile(file: string): Promise<void>;
  close(): Promise<void>;
}

export async function forkHarness(socketPath: string, mode: 'sds' | 'bare' | 'raw'): Promise<SdsServerUnderTest> {
  const script = fileURLToPath(new URL('./sds-harness.js', import.meta.url));
  const child: ChildProcess = fork(script, ['--socket', socketPath, '--mode', mode], {
    // SDS_HARNESS_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the server side.
    execArgv: ['--expose-gc', ...(process.env.SDS_HARNESS_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const replies: HarnessReply[] = [];
  let waiting: (() => void) | undefined;
  child.on('message', (m: HarnessReply) => {
    replies.push(m);
    waiting?.();
  });
  let hasExited = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      hasExited = true;
      waiting?.();
      resolve();
    }),
  );
  const next = async <T extends HarnessReply['type']>(type: T): Promise<Extract<HarnessReply, { type: T }>> => {
    for (;;) {
      const i = replies.findIndex((r) => r.type === type || r.type === 'failed');
      if (i !== -1) {
        const r = replies.splice(i, 1)[0]!;
        if (r.type === 'failed') throw new Error(`SDS harness: ${r.error}`);
        return r as Extract<HarnessReply, { type: T }>;
      }
      if (hasExited) throw new Error(`SDS harness exited before sending "${type}"`);
      await new Promise<void>((resolve) => (waiting = resolve));
    }
  };
  const ask = (req: HarnessRequest) => child.send(req);
  await next('ready');
  return {
    socketPath,
    pid: child.pid!,
    rotate: async () => {
      ask({ type: 'rotate' });
      const r = await next('rotated');
      return { version: r.version, at: r.at, passMs: r.passMs, cpuUs: r.cpuUs };
    },
    memory: async () => {
      ask({ type: 'memory' });
      const r = await next('memory');
      return { rss: r.rss, streams: r.streams };
    },
    startProfile: async () => {
      ask({ type: 'profile-start' });
      await next('profile-started');
    },
    stopProfile: async (file) => {
      ask({ type: 'profile-stop', file });
      await next('profile-stopped');
    },
    close: async () => {
      if (child.connected) ask({ type: 'close' });
      await exited;
    },
  };
}

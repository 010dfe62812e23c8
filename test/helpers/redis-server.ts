/**
 * A real redis-server (Debian's package; .ci/run installs it) on a Unix socket in a given
 * directory: no TCP port to collide with, no persistence. Started and awaited on its own log
 * line. Used by the tests and by bench:authz.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { tempDir } from './tmp.js';

export interface RedisProcess {
  readonly socket: string;
  /** unix:///... as --rate-limit-redis takes it. */
  readonly url: string;
  /** SIGKILL, as a crash or a node going away would look. */
  kill(): Promise<void>;
}

export async function spawnRedis(dir: string): Promise<RedisProcess> {
  const socket = path.join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 5 s:\n${output}`)), 5000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run redis-server (apt-get install redis-server): ${e.message}`));
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (/ready to accept connections/i.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  let killed = false;
  return {
    socket,
    url: `unix://${socket}`,
    async kill() {
      if (killed) return;
      killed = true;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A redis-server for one test, killed at its end. */
export async function startRedis(t: ExecutionContext): Promise<RedisProcess> {
  const redis = await spawnRedis(tempDir(t, 'meshid-redis-'));
  t.teardown(() => redis.kill());
  return redis;
}

/**
 * An advisory lock between processes that rewrite the same files (the CA's offline commands and a
 * running `meshid ca` re-signing its CRL): a lock file created with O_EXCL holding the owner's pid.
 * A lock whose owner no longer runs (a crash) is taken over. Short critical sections only.
 */
import fs from 'node:fs';
import { MeshidError } from './errors.js';

export interface HeldLock {
  release(): void;
}

function ownerAlive(file: string): boolean {
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
  } catch {
    return true; // being created or removed right now: try again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock if it is free (or its owner is gone); undefined when another live process holds it. */
export function tryLock(file: string): HeldLock | undefined {
  for (let i = 0; i < 2; i++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          fs.rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (ownerAlive(file)) return undefined;
      fs.rmSync(file, { force: true }); // a crashed owner's lock
    }
  }
  return undefined;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Waits (blocking, for command-line tools) up to timeoutMs for the lock. */
export function lockSync(file: string, timeoutMs: number): HeldLock {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const held = tryLock(file);
    if (held) return held;
    if (Date.now() >= until) throw lockBusy(file, timeoutMs);
    Atomics.wait(sleeper, 0, 0, 5);
  }
}

/** Waits (asynchronously, for servers) up to timeoutMs for the lock. */
export async function lock(file: string, timeoutMs: number): Promise<HeldLock> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const held = tryLock(file);
    if (held) return held;
    if (Date.now() >= until) throw lockBusy(file, timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function lockBusy(file: string, timeoutMs: number): MeshidError {
  return new MeshidError('state_locked', `${file} is held by another process for more than ${timeoutMs} ms; if no meshid ca command runs, remove it`);
}

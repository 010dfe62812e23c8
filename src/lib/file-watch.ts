/**
 * Watches files and directories for changes, including the way Kubernetes updates mounted
 * ConfigMaps and Secrets: files are symlinks into `..data`, and an update atomically renames a new
 * `..data` symlink over the old one, so the file paths themselves never see a write. We therefore
 * watch the directory that holds each file, treat any event there as "maybe changed", debounce on
 * the injected Clock, and let the consumer re-read and compare contents.
 *
 * chokidar throttles repeated events on one path, so the last of several quick saves can arrive
 * with no event of its own (measured: 5 rename-over saves 5 ms apart, nothing after the last).
 * Two backstops: every burst of events is followed by one more call once things have settled,
 * and an optional periodic call re-reads whatever happened without any event at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { Clock, Timer } from './clock.js';

export interface WatchOptions {
  readonly clock: Clock;
  /** Quiet period after the last event before onChange runs (default 100 ms). */
  readonly debounceMs?: number;
  /** After that call, one more once this much longer has passed without events (default 1 s). */
  readonly settleMs?: number;
  /** Also call onChange this often whatever happens (default 0: never). */
  readonly resyncMs?: number;
  /** Called with chokidar errors; the watch keeps going. */
  readonly onError?: (error: unknown) => void;
}

export interface PathWatch {
  /** Resolves once the initial scan is done and events will be seen. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The directories to watch for a set of files and directories. */
function watchRoots(paths: readonly string[]): string[] {
  const roots = new Set<string>();
  for (const p of paths) {
    const abs = path.resolve(p);
    let isDir = false;
    try {
      isDir = fs.statSync(abs).isDirectory();
    } catch {
      // Not there yet: watch where it will appear.
    }
    roots.add(isDir ? abs : path.dirname(abs));
  }
  return [...roots];
}

export interface EventDebouncer {
  /** Something may have changed. */
  event(): void;
  /** No call after this, not even one already armed. */
  close(): void;
}

/**
 * The debounce of watchPaths, on the injected clock: onChange runs once debounceMs after the last
 * event of a burst, and once more settleMs after that call if no event came meanwhile.
 */
export function debounceEvents(onChange: () => void, options: { readonly clock: Clock; readonly debounceMs: number; readonly settleMs: number }): EventDebouncer {
  let timer: Timer | undefined;
  let closed = false;
  const arm = (ms: number, then?: () => void) => {
    timer?.cancel();
    timer = options.clock.setTimer(ms, () => {
      timer = undefined;
      if (!closed) onChange();
      then?.();
    });
  };
  return {
    event: () => {
      if (!closed) arm(options.debounceMs, () => arm(options.settleMs));
    },
    close: () => {
      closed = true;
      timer?.cancel();
    },
  };
}

export function watchPaths(paths: readonly string[], onChange: () => void, options: WatchOptions): PathWatch {
  const { clock } = options;
  const debounced = debounceEvents(onChange, { clock, debounceMs: options.debounceMs ?? 100, settleMs: options.settleMs ?? 1000 });
  let resync: Timer | undefined;
  let closed = false;
  const armResync = () => {
    if (closed || !options.resyncMs || options.resyncMs <= 0) return;
    resync = clock.setTimer(options.resyncMs, () => {
      if (!closed) onChange();
      armResync();
    });
  };
  const roots = watchRoots(paths);
  const watcher: FSWatcher = watch(roots, {
    ignoreInitial: true,
    // chokidar can open an fs.watch for a file it was still adding when close() ran (a file
    // created just before close, e.g. an atomic rename); non-persistent watches never keep the
    // process alive, so such a late watch cannot hold a closed service (or a test) open. The
    // servers a watch belongs to keep the process running.
    persistent: false,
    // Report the ..data symlink itself changing rather than descending through it.
    followSymlinks: false,
    // ..data and the timestamped directories it points to sit one level down.
    depth: 2,
  });
  watcher.on('all', () => debounced.event());
  watcher.on('error', (e) => options.onError?.(e));
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  // A watched directory that is removed and created again is a new directory that chokidar's
  // watch on the old one never sees into. Its parent is watched (one fs.watch each, no scan) for
  // the name reappearing; the directory is then watched afresh and a change reported, which
  // covers whatever was written into it before the new watch was in place.
  let rearming = Promise.resolve();
  const rearm = (root: string) => {
    rearming = rearming.then(async () => {
      if (closed || !isDirectory(root)) return;
      await watcher.unwatch(root);
      if (closed) return;
      watcher.add(root);
      debounced.event();
    });
  };
  const parentWatches = roots.filter(isDirectory).map((root) => watchParent(root, () => rearm(root), options.onError));
  armResync();
  return {
    ready,
    async close() {
      closed = true;
      debounced.close();
      resync?.cancel();
      for (const w of parentWatches) w?.close();
      await rearming;
      await watcher.close();
    },
  };
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Calls onAppear when an entry named like dir appears in its parent (and it is a directory). */
function watchParent(dir: string, onAppear: () => void, onError?: (error: unknown) => void): fs.FSWatcher | undefined {
  const name = path.basename(dir);
  let present = true;
  try {
    const w = fs.watch(path.dirname(dir), { persistent: false }, (_event, file) => {
      if (file !== null && file !== name) return;
      const now = isDirectory(dir);
      if (now && !present) onAppear();
      present = now;
    });
    w.on('error', (e) => onError?.(e));
    return w;
  } catch (e) {
    onError?.(e); // no parent to watch (removed, or not readable): the directory is watched as before
    return undefined;
  }
}

/**
 * Watches files and directories for changes, including the way Kubernetes updates mounted
 * ConfigMaps and Secrets: files are symlinks into `..data`, and an update atomically renames a new
 * `..data` symlink over the old one, so the file paths themselves never see a write. We therefore
 * watch the directory that holds each file, treat any event there as "maybe changed", debounce on
 * the injected Clock, and let the consumer re-read and compare contents.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { Clock, Timer } from './clock.js';

export interface WatchOptions {
  readonly clock: Clock;
  /** Quiet period after the last event before onChange runs (default 100 ms). */
  readonly debounceMs?: number;
  /** Called with chokidar errors; the watch keeps going. */
  readonly onError?: (error: unknown) => void;
}

export interface PathWatch {
  /** Resolves once the initial scan is done and events will be seen. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The directories to watch for a set of files and directories. */
export function watchRoots(paths: readonly string[]): string[] {
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

export function watchPaths(paths: readonly string[], onChange: () => void, options: WatchOptions): PathWatch {
  const debounceMs = options.debounceMs ?? 100;
  let timer: Timer | undefined;
  let closed = false;
  const fire = () => {
    if (closed) return;
    timer?.cancel();
    timer = options.clock.setTimer(debounceMs, () => {
      timer = undefined;
      if (!closed) onChange();
    });
  };
  const watcher: FSWatcher = watch(watchRoots(paths), {
    ignoreInitial: true,
    // Report the ..data symlink itself changing rather than descending through it.
    followSymlinks: false,
    // ..data and the timestamped directories it points to sit one level down.
    depth: 2,
  });
  watcher.on('all', fire);
  watcher.on('error', (e) => options.onError?.(e));
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    ready,
    async close() {
      closed = true;
      timer?.cancel();
      await watcher.close();
    },
  };
}

/**
 * The policy set in force, kept current from a directory. A change (chokidar through
 * src/lib/file-watch.ts, which sees Kubernetes ..data swaps, debounced on the injected Clock) is
 * read, validated and compiled off to the side (parsing on a worker thread, compiling in slices of a
 * few milliseconds: policy-loader.ts) and then swapped in with one reference assignment,
 * so a request sees either the old set or the new one, never a mix. An invalid change leaves the
 * last good set in force and is logged with file and field. A periodic re-read (resyncMs) catches
 * changes a watcher missed. Until a valid set has been loaded,
 * current() is undefined: the server denies and reports not ready.
 */
import type { Clock } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import { watchPaths, type PathWatch } from '../lib/file-watch.js';
import type { Logger } from '../observability/logger.js';
import type { CompileOptions, CompiledPolicySet } from './compile.js';
import { type AuthzMetrics, noopAuthzMetrics } from './metrics.js';
import { startPolicyLoader } from './policy-loader.js';
import { formatIssue, type PolicyIssue } from './validate.js';

export type ReloadOutcome =
  | {
      readonly status: 'loaded';
      readonly revision: string;
      readonly policies: number;
      readonly warnings: readonly PolicyIssue[];
      /** The files parsed for this load: a file whose content did not change is not parsed again. */
      readonly parsed: readonly string[];
    }
  /** The directory holds what is already in force. */
  | { readonly status: 'unchanged'; readonly revision: string }
  /** Invalid or unreadable: the set in force (if any) stays. */
  | { readonly status: 'rejected'; readonly errors: readonly PolicyIssue[]; readonly kept: string | undefined };

export interface PolicySourceOptions {
  readonly dir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: AuthzMetrics;
  /** Quiet period after the last file event before reloading (default 200 ms). */
  readonly debounceMs?: number;
  /** Watch the directory (default true); tests of loading alone can turn it off. */
  readonly watch?: boolean;
  /**
   * Also re-read the directory this often (default 30 s; 0: never), on the injected Clock. File
   * watchers can miss events (chokidar drops some rename-over saves): this bounds how long a
   * missed change can go unnoticed. An unchanged directory costs a read and a hash.
   */
  readonly resyncMs?: number;
  /** How the loaded policies are compiled (trust domain and aliases, escaped slashes). */
  readonly compile?: CompileOptions;
}

export interface PolicySource {
  /** The set in force, or undefined while no valid set has been loaded. */
  current(): CompiledPolicySet | undefined;
  /** Reads the directory now (reloads are serialised); resolves with what happened. */
  reload(): Promise<ReloadOutcome>;
  /** Called after every reload attempt, whatever triggered it. Returns an unsubscribe function. */
  onReload(listener: (outcome: ReloadOutcome) => void): () => void;
  close(): Promise<void>;
}

/** Loads the directory once, then (by default) watches it. Never throws for a bad directory. */
export async function startPolicySource(options: PolicySourceOptions): Promise<PolicySource> {
  const log = options.logger.child({ component: 'authz-policy' });
  const metrics = options.metrics ?? noopAuthzMetrics;
  const listeners = new Set<(o: ReloadOutcome) => void>();
  let current: CompiledPolicySet | undefined;
  let lastRejected: string | undefined;
  let running: Promise<ReloadOutcome> | undefined;
  let again = false;
  let closed = false;

  const loader = startPolicyLoader();

  const loadOnce = async (): Promise<ReloadOutcome> => {
    const read = await loader.load(options.dir, current?.revision, options.compile);
    if (read.status === 'unreadable') return reject([read.error], `unreadable:${read.error.message}`);
    if (read.status === 'unchanged') {
      const { revision } = read;
      if (lastRejected !== undefined) log.info({ event: 'policy_valid_again', revision, dir: options.dir }, `policy set valid again: the rejected change was reverted; revision ${revision} stays in force`);
      lastRejected = undefined; // a bad edit was reverted: the next bad one is news again
      return { status: 'unchanged', revision };
    }
    if (read.status === 'rejected') return reject(read.errors, read.revision);
    const { set, warnings } = read;
    const revision = set.revision;
    current = set; // the swap: one assignment, between two requests
    if (lastRejected !== undefined) log.info({ event: 'policy_valid_again', revision, dir: options.dir }, `policy set valid again: revision ${revision} in force`);
    lastRejected = undefined;
    const dryRun = set.policies.filter((p) => p.dryRun).map((p) => p.id);
    log.info(
      { revision, policies: set.policies.length, files: read.files, parsed_files: read.parsed.length, dry_run_policies: dryRun, dir: options.dir },
      'policy set loaded',
    );
    for (const w of warnings) log.warn({ revision, code: w.code }, `policy warning: ${formatIssue(w)}`);
    metrics.policyReload('loaded');
    metrics.policySet(revision, set.policies.length);
    return { status: 'loaded', revision, policies: set.policies.length, warnings, parsed: read.parsed };
  };

  const reject = (errors: readonly PolicyIssue[], key: string): ReloadOutcome => {
    const kept = current?.revision;
    // The same broken content seen again (another event, no fix yet) is not logged twice.
    if (key !== lastRejected) {
      lastRejected = key;
      for (const e of errors) log.error({ code: e.code, file: e.file, line: e.line, doc: e.doc, policy: e.policy, field: e.path }, `invalid policy: ${formatIssue(e)}`);
      log.error(
        { errors: errors.length, kept_revision: kept ?? null, dir: options.dir },
        kept ? `policy change rejected; revision ${kept} stays in force` : 'no valid policy set: every check is denied until one is loaded',
      );
      metrics.policyReload('rejected');
    }
    return { status: 'rejected', errors, kept };
  };

  const reload = (): Promise<ReloadOutcome> => {
    if (running) {
      again = true; // a change arrived mid-read: read once more afterwards
      return running;
    }
    running = (async () => {
      let outcome: ReloadOutcome;
      do {
        again = false;
        try {
          outcome = await loadOnce();
        } catch (e) {
          outcome = reject([{ severity: 'error', code: 'policy_load_failed', file: options.dir, message: errorMessage(e) }], `failed:${errorMessage(e)}`);
        }
        for (const l of listeners) l(outcome);
      } while (again && !closed);
      running = undefined;
      return outcome;
    })();
    return running;
  };

  let watch: PathWatch | undefined;
  if (options.watch !== false) {
    watch = watchPaths([options.dir], () => void reload(), {
      clock: options.clock,
      debounceMs: options.debounceMs ?? 200,
      resyncMs: options.resyncMs ?? 30_000,
      onError: (e) => log.warn({ err: errorMessage(e) }, 'policy directory watch error'),
    });
    // Watching before the first read: a change made while it runs is an event, not a gap.
    await watch.ready;
  }
  await reload();

  return {
    current: () => current,
    reload,
    onReload(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      await watch?.close();
      await running;
      await loader.close();
    },
  };
}

/**
 * Loads a policy directory without stalling the thread that answers Checks. Reading, hashing,
 * parsing, validating and linting run on a worker thread (policy-worker.ts), which re-parses only
 * files whose content changed; the validated policies come back in batches the main thread asks
 * for one at a time (a batch is received in about a millisecond), and are compiled here in slices
 * of SLICE_MS (compiled rules are closures, which cannot cross threads). The compiled set is
 * returned whole, for one swap: until then the set in force keeps answering.
 *
 * The worker's heap is capped (WORKER_HEAP_MB): a policy set that would need more kills the
 * worker, not the agent; the load is refused (policy_load_failed) and the next one starts a new
 * worker.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { packagePath } from '../lib/package-path.js';
import { type CompileOptions, type CompiledPolicySet, compilePolicySetSteps } from './compile.js';
import type { AuthorizationPolicy } from './policy.js';
import type { RateLimitPolicy } from './rate-limit/policy.js';
import type { PolicyIssue } from './validate.js';

/** The longest the main thread compiles before it lets other work run. */
export const SLICE_MS = 4;
/** The loader thread's heap limit. */
export const WORKER_HEAP_MB = 1024;

export type LoaderRequest =
  | { readonly id: number; readonly type: 'load'; readonly dir: string; readonly current: string | undefined }
  | { readonly id: number; readonly type: 'more' };

export type LoaderReply =
  | { readonly id: number; readonly type: 'unreadable'; readonly error: PolicyIssue }
  | { readonly id: number; readonly type: 'unchanged'; readonly revision: string }
  | { readonly id: number; readonly type: 'rejected'; readonly revision: string; readonly errors: readonly PolicyIssue[]; readonly parsed: readonly string[] }
  | {
      readonly id: number;
      readonly type: 'parsed';
      readonly revision: string;
      readonly files: number;
      /** Files parsed for this load; the others' content was unchanged. */
      readonly parsed: readonly string[];
      readonly batches: number;
      readonly rateLimits: readonly RateLimitPolicy[];
      readonly warnings: readonly PolicyIssue[];
    }
  | { readonly id: number; readonly type: 'batch'; readonly policies: readonly AuthorizationPolicy[] }
  | { readonly id: number; readonly type: 'end' }
  | { readonly id: number; readonly type: 'failed'; readonly message: string };

export type LoadResult =
  | { readonly status: 'unreadable'; readonly error: PolicyIssue }
  | { readonly status: 'unchanged'; readonly revision: string }
  | { readonly status: 'rejected'; readonly revision: string; readonly errors: readonly PolicyIssue[]; readonly parsed: readonly string[] }
  | {
      readonly status: 'compiled';
      readonly set: CompiledPolicySet;
      readonly files: number;
      readonly parsed: readonly string[];
      readonly warnings: readonly PolicyIssue[];
    };

export interface PolicyLoader {
  /** One load at a time (the caller serialises them). Throws when the worker fails or dies. */
  load(dir: string, current: string | undefined, compile: CompileOptions | undefined): Promise<LoadResult>;
  close(): Promise<void>;
}

export function startPolicyLoader(): PolicyLoader {
  let worker: Worker | undefined;
  let nextId = 1;
  let waiting: { readonly id: number; resolve(r: LoaderReply): void; reject(e: Error): void } | undefined;
  let closed = false;

  const spawn = (): Worker => {
    // By package path, not relative to this module: in the bundled CLI this code runs from dist/src/cli/meshid.cjs.
    const w = new Worker(packagePath('dist', 'src', 'authz', 'policy-worker.js'), { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    w.unref(); // idle, it never keeps the process alive; ref()'d while a load runs
    w.on('message', (reply: LoaderReply) => {
      if (waiting && reply.id === waiting.id) {
        const { resolve } = waiting;
        waiting = undefined;
        resolve(reply);
      }
    });
    const gone = (why: string) => {
      if (worker === w) worker = undefined;
      const pendingCall = waiting;
      waiting = undefined;
      pendingCall?.reject(new Error(why));
    };
    w.on('error', (e) => gone(`the policy loader thread failed: ${e.message}`));
    w.on('exit', (code) => gone(`the policy loader thread exited (code ${code})`));
    return w;
  };

  const ask = (w: Worker, request: LoaderRequest): Promise<LoaderReply> =>
    new Promise<LoaderReply>((resolve, reject) => {
      waiting = { id: request.id, resolve, reject };
      w.postMessage(request);
    });

  return {
    async load(dir, current, compile) {
      if (closed) throw new Error('the policy loader is closed');
      const w = (worker ??= spawn());
      w.ref();
      try {
        const id = nextId++;
        const first = await ask(w, { id, type: 'load', dir, current });
        switch (first.type) {
          case 'unreadable':
            return { status: 'unreadable', error: first.error };
          case 'unchanged':
            return { status: 'unchanged', revision: first.revision };
          case 'rejected':
            return { status: 'rejected', revision: first.revision, errors: first.errors, parsed: first.parsed };
          case 'failed':
            throw new Error(first.message);
          case 'parsed':
            break;
          default:
            throw new Error(`the policy loader thread answered ${first.type} to a load`);
        }
        const policies: AuthorizationPolicy[] = [];
        for (;;) {
          await nextTurn(); // a batch at a time, with the event loop free in between
          const more = await ask(w, { id, type: 'more' });
          if (more.type === 'end') break;
          if (more.type !== 'batch') throw new Error(`the policy loader thread answered ${more.type} to a batch request`);
          policies.push(...more.policies);
        }
        const set = await compileInSlices(policies, first.revision, compile ?? {}, first.rateLimits);
        return { status: 'compiled', set, files: first.files, parsed: first.parsed, warnings: first.warnings };
      } finally {
        w.unref();
      }
    },
    async close() {
      closed = true;
      const w = worker;
      worker = undefined;
      if (w) await w.terminate();
    },
  };
}

/** compilePolicySet in slices of at most about SLICE_MS, yielding to the event loop in between. */
export async function compileInSlices(
  policies: readonly AuthorizationPolicy[],
  revision: string,
  options: CompileOptions,
  rateLimits: readonly RateLimitPolicy[],
): Promise<CompiledPolicySet> {
  const steps = compilePolicySetSteps(policies, revision, options, rateLimits);
  for (;;) {
    const until = performance.now() + SLICE_MS;
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      if (performance.now() >= until) break;
    }
    await nextTurn();
  }
}

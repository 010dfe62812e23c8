/**
 * The policy loader's thread (started by policy-loader.ts): reads the policy directory, hashes
 * each file, parses and validates only the files whose content changed since the last read
 * (the others' results are kept by hash), and lints the whole set. None of that runs on the
 * thread that answers Checks: parsing 10,000 rules of YAML takes seconds.
 *
 * The result goes back in small batches, each sent only when the main thread asks for it, so that
 * no single message takes the main thread more than a few milliseconds to receive.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { AuthorizationPolicy } from './policy.js';
import { readPolicyDir } from './policy-dir.js';
import { checkParsed, revisionOf } from './policy-set.js';
import { mergeParsedFiles, parsePolicyFile, type ParsedPolicies } from './validate.js';
import type { LoaderReply, LoaderRequest } from './policy-loader.js';

/** Rules per batch: received on the main thread in about a millisecond. */
const BATCH_RULES = 250;

const port = parentPort;
if (!port) throw new Error('policy-worker.js runs as a worker thread (started by policy-loader.ts)');

/** file name -> the content hash and what parsing it gave. */
let cache = new Map<string, { readonly hash: string; readonly parsed: ParsedPolicies }>();
let pending: AuthorizationPolicy[][] = [];

const send = (reply: LoaderReply) => port.postMessage(reply);

port.on('message', (msg: LoaderRequest) => {
  if (msg.type === 'more') {
    const batch = pending.shift();
    send(batch ? { id: msg.id, type: 'batch', policies: batch } : { id: msg.id, type: 'end' });
    return;
  }
  load(msg.dir, msg.current).then(
    (reply) => send({ ...reply, id: msg.id } as LoaderReply),
    (e: unknown) => send({ id: msg.id, type: 'failed', message: e instanceof Error ? e.message : String(e) }),
  );
});

type Unaddressed<T> = T extends unknown ? Omit<T, 'id'> : never;

async function load(dir: string, current: string | undefined): Promise<Unaddressed<LoaderReply>> {
  pending = [];
  const read = await readPolicyDir(dir);
  if (!read.ok) return { type: 'unreadable', error: read.error };
  const revision = revisionOf(read.files);
  if (revision === current) return { type: 'unchanged', revision };
  const next = new Map<string, { readonly hash: string; readonly parsed: ParsedPolicies }>();
  const parsedNow: string[] = [];
  for (const f of read.files) {
    const hash = createHash('sha256').update(f.text).digest('hex');
    const known = cache.get(f.file);
    if (known && known.hash === hash) {
      next.set(f.file, known);
      continue;
    }
    next.set(f.file, { hash, parsed: parsePolicyFile(f.file, f.text) });
    parsedNow.push(f.file);
  }
  cache = next;
  const checked = checkParsed(mergeParsedFiles([...next.values()].map((e) => e.parsed)), dir);
  if (!checked.ok) return { type: 'rejected', revision, errors: checked.errors, parsed: parsedNow };
  pending = batches(checked.policies);
  return {
    type: 'parsed',
    revision,
    files: read.files.length,
    parsed: parsedNow,
    batches: pending.length,
    rateLimits: checked.rateLimits,
    warnings: checked.warnings,
  };
}

function batches(policies: readonly AuthorizationPolicy[]): AuthorizationPolicy[][] {
  const out: AuthorizationPolicy[][] = [];
  let batch: AuthorizationPolicy[] = [];
  let rules = 0;
  for (const p of policies) {
    batch.push(p);
    rules += Math.max(1, p.rules.length);
    if (rules >= BATCH_RULES) {
      out.push(batch);
      batch = [];
      rules = 0;
    }
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/**
 * Reads a policy directory into file texts, as one consistent snapshot.
 *
 * Kubernetes mounts a ConfigMap as `name -> ..data/name` symlinks, `..data -> ..2024_...` and the
 * real files in the hidden timestamped directory; an update is a swap of the `..data` symlink.
 * When `..data` exists the snapshot is read from its target, resolved once, so every file comes
 * from the same generation and each policy is read once. Otherwise the directory is walked
 * (hidden entries skipped, symlinks followed, each real file read once), and the walk is repeated
 * if any file changed while it was read, so an editor saving two files never yields a mix.
 *
 * Limits (README "Security limits"): a policy file of more than MAX_POLICY_FILE_BYTES, or a
 * directory of more than MAX_POLICY_DIR_BYTES in all, is refused from its size before it is read
 * (and a file that grows past the limit while it is read is cut off there and refused), so a
 * 50 MB file costs a stat, not 50 MB of memory. Text must be UTF-8: an invalid byte is refused
 * naming the file and line rather than read as U+FFFD. A symlink that leads nowhere, or in a
 * loop, is refused naming the entry.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PolicyFileText, PolicyIssue } from './validate.js';

export type PolicyDirRead =
  | { readonly ok: true; readonly files: readonly PolicyFileText[] }
  | { readonly ok: false; readonly error: PolicyIssue };

/** The largest policy file read (4 MiB: a ConfigMap holds at most 1 MiB; 10,000 rules are ~1.5 MB). */
export const MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024;
/** The most policy text read from one directory, all files together. */
export const MAX_POLICY_DIR_BYTES = 16 * 1024 * 1024;

const ATTEMPTS = 5;

/** A problem with one entry that reading again will not fix (too large, not UTF-8). */
class EntryProblem extends Error {
  constructor(readonly issue: PolicyIssue) {
    super(issue.message);
  }
}

export async function readPolicyDir(dir: string): Promise<PolicyDirRead> {
  let lastProblem = '';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      const root = await snapshotRoot(dir);
      const before = await listFiles(root);
      const total = before.reduce((n, f) => n + f.size, 0);
      if (total > MAX_POLICY_DIR_BYTES) {
        return { ok: false, error: policyTooLarge(dir, `the policy files hold ${total} bytes in all, over the ${MAX_POLICY_DIR_BYTES}-byte limit for one directory`) };
      }
      const files: PolicyFileText[] = [];
      for (const f of before) files.push({ file: f.display, text: await readPolicyText(f.real, f.display) });
      const after = await listFiles(await snapshotRoot(dir));
      if (fingerprint(before) === fingerprint(after)) return { ok: true, files };
      lastProblem = 'files kept changing while they were read';
    } catch (e) {
      if (e instanceof EntryProblem) return { ok: false, error: e.issue };
      const err = e as NodeJS.ErrnoException & { entry?: string };
      // ENOENT mid-read: a generation was removed under us (a ..data swap), or a symlink is left
      // pointing at a file that is being replaced; read again.
      if (err.code === 'ENOENT' && attempt < ATTEMPTS - 1 && (await exists(dir))) {
        lastProblem = err.entry !== undefined ? danglingMessage(err.entry, err.path) : `${err.path ?? 'a file'} disappeared while it was read`;
        continue;
      }
      if (err.entry !== undefined) return { ok: false, error: entryError(err.entry, err) };
      return { ok: false, error: dirError(dir, err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.code ?? err.message}`) };
    }
  }
  return { ok: false, error: dirError(dir, lastProblem) };
}

function dirError(dir: string, message: string): PolicyIssue {
  return { severity: 'error', code: 'policy_dir_unreadable', file: dir, message: `policy directory ${message}` };
}

function policyTooLarge(file: string, message: string): PolicyIssue {
  return { severity: 'error', code: 'policy_too_large', file, message };
}

function danglingMessage(entry: string, target: string | undefined): string {
  return `${entry} is a symlink to ${target ?? 'a path'}, which does not exist`;
}

/** An entry of the directory that cannot be followed: a dangling symlink, a loop, no permission. */
function entryError(entry: string, err: NodeJS.ErrnoException): PolicyIssue {
  const message =
    err.code === 'ENOENT'
      ? danglingMessage(entry, err.path)
      : err.code === 'ELOOP'
        ? `${entry} is a symlink loop (ELOOP): it never reaches a file`
        : `${entry} cannot be read: ${err.code ?? err.message}`;
  return { severity: 'error', code: 'policy_dir_unreadable', file: entry, message };
}

/**
 * A policy file's text: at most MAX_POLICY_FILE_BYTES (one more byte is read to see that a
 * file grew past it), decoded as strict UTF-8.
 */
async function readPolicyText(real: string, display: string): Promise<string> {
  const handle = await fs.open(real, 'r');
  let bytes: Buffer;
  try {
    const chunks: Buffer[] = [];
    let got = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, MAX_POLICY_FILE_BYTES + 1 - got));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      got += bytesRead;
      if (got > MAX_POLICY_FILE_BYTES) {
        throw new EntryProblem(policyTooLarge(display, `more than ${MAX_POLICY_FILE_BYTES} bytes, over the limit for one policy file (it grew while it was read)`));
      }
    }
    bytes = Buffer.concat(chunks, got);
  } finally {
    await handle.close();
  }
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = lineAt(bytes, at);
    throw new EntryProblem({
      severity: 'error',
      code: 'invalid_utf8',
      file: display,
      line,
      message: `not valid UTF-8: byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at offset ${at} (line ${line}); policy files are UTF-8 text`,
    });
  }
}

const READ_CHUNK = 256 * 1024;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) [n, min] = [1, 0x80];
    else if (c >= 0xe0 && c <= 0xef) [n, min] = [2, 0x800];
    else if (c >= 0xf0 && c <= 0xf4) [n, min] = [3, 0x10000];
    else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += n + 1;
  }
  return b.length;
}

function lineAt(b: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < b.length; i++) if (b[i] === 0x0a) line++;
  return line;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The directory to read: the target of `..data` when present, else dir itself. */
async function snapshotRoot(dir: string): Promise<string> {
  const st = await fs.stat(dir);
  if (!st.isDirectory()) {
    const e = new Error(`${dir} is not a directory`) as NodeJS.ErrnoException;
    e.code = 'ENOTDIR';
    throw e;
  }
  try {
    return await fs.realpath(path.join(dir, '..data'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fs.realpath(dir);
    throw e;
  }
}

interface FoundFile {
  readonly display: string;
  readonly real: string;
  readonly stamp: string;
  readonly size: number;
}

/** Entries that may hold policies: policy files, and names that may be directories. */
function mayHoldPolicies(name: string): boolean {
  return POLICY_EXT.test(name) || !name.includes('.');
}

/** stat() of a directory entry; a failure is tagged with the entry it is about. */
async function statEntry(full: string, display: string) {
  try {
    return await fs.stat(full, { bigint: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { entry?: string };
    if (err.code === 'ENOENT' || err.code === 'ELOOP') {
      const link = await fs.lstat(full).catch(() => undefined);
      if (!link) throw err; // the entry itself went away: the directory changed under us
      if (!link.isSymbolicLink() || !mayHoldPolicies(path.basename(full))) return undefined;
      err.entry = display;
      if (err.code === 'ENOENT') err.path = await fs.readlink(full).catch(() => err.path);
    } else {
      err.entry = display;
    }
    throw err;
  }
}

const POLICY_EXT = /\.ya?ml$/i;

async function listFiles(root: string): Promise<FoundFile[]> {
  // One entry per real file; a file reached both directly and through a symlink is named by
  // its own path.
  const byReal = new Map<string, FoundFile & { readonly viaLink: boolean }>();
  const visitedDirs = new Set<string>([root]);
  const walk = async (dirReal: string, rel: string): Promise<void> => {
    const entries = (await fs.readdir(dirReal)).sort();
    for (const name of entries) {
      if (name.startsWith('.')) continue; // ..data, ..2024_..., editor swap files
      const full = path.join(dirReal, name);
      const display = rel ? `${rel}/${name}` : name;
      const st = await statEntry(full, display);
      if (st === undefined) continue; // a dangling link that is no policy (notes.txt -> nowhere)
      if (st.isDirectory()) {
        const real = await fs.realpath(full);
        if (!visitedDirs.has(real)) {
          visitedDirs.add(real);
          await walk(real, display);
        }
      } else if (st.isFile() && POLICY_EXT.test(name)) {
        const real = await fs.realpath(full);
        const viaLink = (await fs.lstat(full)).isSymbolicLink();
        const known = byReal.get(real);
        if (known && (viaLink || !known.viaLink)) continue;
        if (st.size > BigInt(MAX_POLICY_FILE_BYTES)) {
          throw new EntryProblem(policyTooLarge(display, `${st.size} bytes, over the ${MAX_POLICY_FILE_BYTES}-byte limit for one policy file; nothing of it was read`));
        }
        byReal.set(real, { display, real, stamp: `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, size: Number(st.size), viaLink });
      }
    }
  };
  await walk(root, '');
  return [...byReal.values()].sort((a, b) => (a.display < b.display ? -1 : a.display > b.display ? 1 : 0));
}

function fingerprint(files: readonly FoundFile[]): string {
  return files.map((f) => `${f.display}\0${f.real}\0${f.stamp}`).join('\n');
}

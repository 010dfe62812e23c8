/**
 * Reads a policy directory into file texts, as one consistent snapshot.
 *
 * Kubernetes mounts a ConfigMap as `name -> ..data/name` symlinks, `..data -> ..2024_...` and the
 * real files in the hidden timestamped directory; an update is a swap of the `..data` symlink.
 * When `..data` exists the snapshot is read from its target, resolved once, so every file comes
 * from the same generation and each policy is read once. Otherwise the directory is walked
 * (hidden entries skipped, symlinks followed, each real file read once), and the walk is repeated
 * if any file changed while it was read, so an editor saving two files never yields a mix.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PolicyFileText, PolicyIssue } from './validate.js';

export type PolicyDirRead =
  | { readonly ok: true; readonly files: readonly PolicyFileText[] }
  | { readonly ok: false; readonly error: PolicyIssue };

const ATTEMPTS = 5;

export async function readPolicyDir(dir: string): Promise<PolicyDirRead> {
  let lastProblem = '';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      const root = await snapshotRoot(dir);
      const before = await listFiles(root);
      const files: PolicyFileText[] = [];
      for (const f of before) files.push({ file: f.display, text: await fs.readFile(f.real, 'utf8') });
      const after = await listFiles(await snapshotRoot(dir));
      if (fingerprint(before) === fingerprint(after)) return { ok: true, files };
      lastProblem = 'files kept changing while they were read';
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // ENOENT mid-read: a generation was removed under us (a ..data swap); read again.
      if (err.code === 'ENOENT' && attempt < ATTEMPTS - 1 && (await exists(dir))) {
        lastProblem = `${err.path ?? 'a file'} disappeared while it was read`;
        continue;
      }
      return { ok: false, error: dirError(dir, err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.code ?? err.message}`) };
    }
  }
  return { ok: false, error: dirError(dir, lastProblem) };
}

function dirError(dir: string, message: string): PolicyIssue {
  return { severity: 'error', code: 'policy_dir_unreadable', file: dir, message: `policy directory ${message}` };
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
      const st = await fs.stat(full, { bigint: true });
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
        byReal.set(real, { display, real, stamp: `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, viaLink });
      }
    }
  };
  await walk(root, '');
  return [...byReal.values()].sort((a, b) => (a.display < b.display ? -1 : a.display > b.display ? 1 : 0));
}

function fingerprint(files: readonly FoundFile[]): string {
  return files.map((f) => `${f.display}\0${f.real}\0${f.stamp}`).join('\n');
}

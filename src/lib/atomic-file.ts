/** Writing a file so that readers see the old content or the new, never half of either. */
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes to a temporary file in the same directory with the final mode, then renames it over
 * file (rename is atomic within a file system). A unique temporary name per call, so two writers
 * in one process never share one.
 */
export function writeFileAtomically(file: string, content: string | Uint8Array, mode: number): void {
  const tmp = `${file}.${process.pid}.${(seq = (seq + 1) % 1e9)}.tmp`;
  try {
    fs.writeFileSync(tmp, content, { mode, flag: 'w' });
    fs.chmodSync(tmp, mode); // the umask may have narrowed it
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
let seq = 0;

/**
 * Several files replaced as one: every new content is written to its temporary file first, and
 * only when all are written are they renamed into place, in the order given. A write that fails
 * (a full disk) leaves every file as it was, so a key and the certificate for it are never split
 * across two generations by a disk that filled up between them. Renames need no new space.
 */
export function writeFilesAtomically(files: ReadonlyArray<{ readonly file: string; readonly content: string | Uint8Array; readonly mode: number }>): void {
  const staged: Array<{ readonly tmp: string; readonly file: string }> = [];
  try {
    for (const f of files) {
      const tmp = `${f.file}.${process.pid}.${(seq = (seq + 1) % 1e9)}.tmp`;
      staged.push({ tmp, file: f.file });
      fs.writeFileSync(tmp, f.content, { mode: f.mode, flag: 'w' });
      fs.chmodSync(tmp, f.mode);
    }
  } catch (e) {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
    throw e;
  }
  for (let i = 0; i < staged.length; i++) {
    try {
      fs.renameSync(staged[i]!.tmp, staged[i]!.file);
    } catch (e) {
      for (const s of staged.slice(i)) fs.rmSync(s.tmp, { force: true });
      throw e;
    }
  }
}

/**
 * writeFileAtomically that also survives a crash or power loss: the temporary file is fsynced
 * before the rename and the directory after it, so once this returns the new content is on disk,
 * and a crash at any point leaves the old content or the new.
 */
export function writeFileDurably(file: string, content: string | Uint8Array, mode: number): void {
  const tmp = `${file}.${process.pid}.${(seq = (seq + 1) % 1e9)}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeFileSync(fd, content);
      fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

/** Appends one line and fsyncs it before returning (audit trails: nothing buffered, nothing sampled). */
export function appendLineDurably(file: string, line: string, mode = 0o600): void {
  const fd = fs.openSync(file, 'a', mode);
  try {
    fs.writeSync(fd, line.endsWith('\n') ? line : `${line}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

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

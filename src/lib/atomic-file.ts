/** Writing a file so that readers see the old content or the new, never half of either. */
import fs from 'node:fs';

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

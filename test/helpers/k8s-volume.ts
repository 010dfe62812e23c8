/**
 * Writes files the way the kubelet updates a mounted Secret or ConfigMap: each file is a symlink
 * to ..data/<name>, ..data is a symlink to a timestamped directory, and an update renames a new
 * ..data symlink over the old one (the file paths themselves never see a write).
 */
import fs from 'node:fs';
import path from 'node:path';

let generation = 0;

export function writeK8sVolume(dir: string, files: Record<string, string>): void {
  const ts = path.join(dir, `..2026_01_01_00_00_00.${process.pid}_${++generation}`);
  fs.mkdirSync(ts);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(ts, name), content);
  const tmp = path.join(dir, '..data_tmp');
  fs.symlinkSync(path.basename(ts), tmp);
  fs.renameSync(tmp, path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  for (const old of fs.readdirSync(dir)) {
    if (old.startsWith('..2026') && old !== path.basename(ts)) fs.rmSync(path.join(dir, old), { recursive: true });
  }
}

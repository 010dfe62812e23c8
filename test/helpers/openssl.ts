import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface OpensslVerifyResult {
  ok: boolean;
  output: string;
}

/**
 * `openssl verify -x509_strict` of a leaf (plus untrusted intermediates) against root PEMs,
 * optionally at a given time and for a given purpose; `strict: false` drops -x509_strict.
 */
export function opensslVerify(dir: string, opts: { roots: string; leaf: string; intermediates?: string | undefined; atTime?: Date; purpose?: string; strict?: boolean }): OpensslVerifyResult {
  const rootsFile = path.join(dir, `roots-${process.hrtime.bigint()}.pem`);
  const leafFile = path.join(dir, `leaf-${process.hrtime.bigint()}.pem`);
  fs.writeFileSync(rootsFile, opts.roots);
  fs.writeFileSync(leafFile, opts.leaf);
  const args = ['verify', ...(opts.strict === false ? [] : ['-x509_strict']), '-CAfile', rootsFile];
  if (opts.intermediates) {
    const interFile = path.join(dir, `inter-${process.hrtime.bigint()}.pem`);
    fs.writeFileSync(interFile, opts.intermediates);
    args.push('-untrusted', interFile);
  }
  if (opts.atTime) args.push('-attime', String(Math.floor(opts.atTime.getTime() / 1000)));
  if (opts.purpose) args.push('-purpose', opts.purpose);
  args.push(leafFile);
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

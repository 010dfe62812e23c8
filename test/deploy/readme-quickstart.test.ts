/**
 * The README's operator quick start, run as written: the test copies the shell blocks of that
 * section out of README.md and runs them with bash, so the README and what works cannot drift.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import test from 'ava';
import { cleanEnv } from '../helpers/meshid-process.js';

const SECTION = '## Quick start for operators';

function quickStartScript(readme: string): string {
  const start = readme.indexOf(SECTION);
  if (start === -1) throw new Error(`README has no "${SECTION}" section`);
  const end = readme.indexOf('\n## ', start + SECTION.length);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join('');
}

test('README quick start, run as written: CA, two agents with dev tokens, sds fetch, openssl mTLS, an allowed and a denied Check', async (t) => {
  const script = quickStartScript(fs.readFileSync('README.md', 'utf8'));
  t.true(script.split('\n').length > 20, 'the section has its commands');
  // A process group of its own, so a failure mid-way cannot leave the CA or an agent running.
  const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { env: cleanEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  t.teardown(killGroup);
  const timer = setTimeout(killGroup, 90_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  t.is(code, 0, `exit ${code}\n${err}\n${out}`);

  t.regex(out, /SPIFFE ID {2}spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders/);
  t.regex(out, /SPIFFE ID {2}spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
  t.regex(out, /^Verify return code: 0 \(ok\)$/m);
  t.regex(out, /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders/);
  const answers = out.split('\n').filter((l) => l.startsWith('{"decision"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.is(answers.length, 2, out);
  t.like(answers[0], { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-shop', rule: 0, grpcStatus: 0 });
  t.like(answers[1], { decision: 'deny', reason: 'no_allow_policy_matched', grpcStatus: 7, httpStatus: 403 });
  t.is((answers[1]!.nearest as string[])[0], 'shop/allow-shop rule 0: path /api/v1/orders is not /api/orders or /api/orders/*');
});

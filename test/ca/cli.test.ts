/** `meshid ca` as a user runs it: help, flag errors, a child process that serves and stops on SIGTERM. */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { CaClient } from '../../src/ca/client.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { csrFor, FRONTEND, leafOf, STATIC_TOKEN } from './harness.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const env = { ...process.env, MESHID_DEBUG: '' };

function meshid(args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env, timeout: 20_000 });
}

test('meshid ca --help lists every flag', (t) => {
  const r = meshid(['ca', '--help']);
  t.is(r.status, 0, r.stderr);
  for (const flag of ['--listen', '--trust-domain', '--state-dir', '--ttl', '--max-ttl', '--jwt-keys', '--jwt-issuer', '--jwt-audience', '--static-tokens', '--san', '--log-level']) {
    t.true(r.stdout.includes(flag), flag);
  }
  t.regex(r.stdout, /default 1h/);
});

test('a bad flag or value exits 2 with a line naming it', (t) => {
  const bad = meshid(['ca', '--bogus']);
  t.is(bad.status, 2);
  t.regex(bad.stderr.split('\n')[0]!, /^meshid ca: --bogus: unknown flag/);
  const ttl = meshid(['ca', '--ttl', 'forever']);
  t.is(ttl.status, 2);
  t.regex(ttl.stderr, /^meshid ca: ttl \(flag --ttl\): expected a duration/);
  t.false(/\n\s+at /.test(bad.stderr + ttl.stderr), 'no stack trace');
});

test('a startup failure exits 1 with one line and no stack trace', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'root-cert.pem'), 'x');
  const r = meshid(['ca', '--listen', '127.0.0.1:0', '--state-dir', dir, '--log-level', 'error']);
  t.is(r.status, 1);
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.regex(r.stderr, /^meshid ca: state dir .*: root-key\.pem is missing while root-cert\.pem exists/);
});

test('meshid ca runs as a child process, issues a certificate, and exits 0 on SIGTERM', async (t) => {
  const dir = tempDir(t);
  const tokens = path.join(dir, 'tokens.yaml');
  fs.writeFileSync(tokens, `tokens:\n  ${STATIC_TOKEN}: ${FRONTEND}\n`);
  const stateDir = path.join(dir, 'state');
  const child = spawn(process.execPath, [MAIN, 'ca', '--listen', '127.0.0.1:0', '--trust-domain', 'example.org', '--state-dir', stateDir, '--static-tokens', tokens], { env });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const listening = await new Promise<Record<string, string>>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      for (const line of stdout.split('\n')) {
        if (line.includes('"event":"listening"')) resolve(JSON.parse(line) as Record<string, string>);
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  t.is(listening.trustDomain, 'example.org');
  t.is(listening.bundle, path.join(stateDir, 'bundle.pem'));
  const bundlePem = fs.readFileSync(listening.bundle!, 'utf8');
  const client = new CaClient({ address: listening.address!, caBundlePem: bundlePem });
  const r = await client.createCertificate(csrFor(FRONTEND).pem, { kind: 'token', token: STATIC_TOKEN });
  client.close();
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(leafOf(r.chainPem).sans, [{ type: 'uri', value: FRONTEND }]);
  t.true(opensslVerify(tempDir(t), { roots: bundlePem, leaf: r.chainPem[0]! }).ok);

  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exit, 0, stderr);
  t.regex(stdout, /"event":"certificate_issued"/);
  t.regex(stdout, /"event":"stopped"/);
  t.false(stdout.includes(STATIC_TOKEN));
});

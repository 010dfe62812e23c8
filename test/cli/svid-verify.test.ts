import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { main } from '../../src/cli/router.js';
import { parseRfc3339 } from '../../src/cli/svid-verify.js';
import { certificateFingerprint } from '../../src/identity/bundle.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { chainPem, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ID = 'spiffe://example.org/ns/shop/sa/frontend';
const STACK_TRACE = /\n\s+at /;

const root = makeRoot();
const inter = makeIntermediate(root);
const leaf = makeLeaf(inter, ID);
/** A root without a SPIFFE ID: only --trust-domain says which trust domain it serves. */
const anonymousRoot = makeRoot('example.org', { sans: [] });

interface Files {
  dir: string;
  bundle: string;
  chain: string;
  write(name: string, text: string): string;
}

function files(t: ExecutionContext): Files {
  const dir = tempDir(t);
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  return { dir, write, bundle: write('bundle.pem', root.pem), chain: write('svid.pem', chainPem(leaf, inter)) };
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, done) {
        append(chunk.toString());
        done();
      },
    });
  const code = await main(argv, { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), env: {} });
  return { code, stdout, stderr };
}

test('exit 0 with a one-line summary: SPIFFE ID, expiry, root subject and fingerprint', async (t) => {
  const f = files(t);
  const r = await run(['svid', 'verify', '--bundle', f.bundle, '--trust-domain', 'example.org', f.chain]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  // The earliest notAfter on the whole path: root, intermediate and leaf are made a moment apart, and
  // DER keeps whole seconds, so any of them can be the first to expire.
  const expiry = new Date(Math.min(...[leaf, inter, root].map((c) => c.cert.notAfter.getTime()))).toISOString().replace('.000Z', 'Z');
  const [before, after] = r.stdout.split(/ \(in 2[34]h\d{1,2}m\), /);
  t.is(before, `valid: ${ID}, expires ${expiry}`, r.stdout);
  t.is(after, `root "O=example.org,CN=test root example.org" sha256:${certificateFingerprint(root.cert)}\n`);
});

test('--at verifies at another moment: exit 1 with the reason on stderr once the chain has expired', async (t) => {
  const f = files(t);
  const later = new Date(leaf.cert.notAfter.getTime() + 1000).toISOString();
  const r = await run(['svid', 'verify', '--bundle', f.bundle, '--trust-domain', 'example.org', '--at', later, f.chain]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^meshid svid verify: invalid \(expired\): .* expired at .*\(verification time .*\)\n$/);
  t.notRegex(r.stderr, STACK_TRACE);
});

test('svid verify refuses a leaf whose SPIFFE ID is the bare trust domain (exit 1)', async (t) => {
  const f = files(t);
  const bare = f.write('bare.pem', chainPem(makeLeaf(inter, 'spiffe://example.org'), inter));
  const r = await run(['svid', 'verify', '--bundle', f.bundle, '--trust-domain', 'example.org', bare]);
  t.is(r.code, 1, r.stdout);
  t.regex(r.stderr, /invalid \(leaf_spiffe_id_no_path\): .*bare trust domain/);
});

const invalid: Array<[string, (f: Files) => string[], RegExp]> = [
  ['a leaf from another CA', (f) => [f.write('other.pem', makeLeaf(makeRoot('example.org', { commonName: 'other' }), ID).pem)], /invalid \(untrusted\): no trusted issuer for leaf/],
  ['a trust domain mismatch', (f) => ['--trust-domain', 'example.com', '--bundle', f.write('anon.pem', anonymousRoot.pem), f.write('l.pem', makeLeaf(anonymousRoot, ID).pem)], /invalid \(trust_domain_mismatch\): the SVID's ID spiffe:\/\/example\.org\/ns\/shop\/sa\/frontend is in trust domain "example\.org", but "example\.com" is required/],
  ['a missing intermediate', (f) => [f.write('leaf-only.pem', leaf.pem)], /invalid \(untrusted\)/],
  // A wrong --trust-domain is a verdict on readable input, not unreadable input (issue 15).
  ['a wrong --trust-domain (the bundle is of another one)', (f) => ['--trust-domain', 'example.com', f.chain], /invalid \(bundle_root_trust_domain_mismatch\): .*bundle\.pem, certificate 1 .* belongs to trust domain "example\.org" .*not "example\.com"/],
  ['a leaf without digitalSignature', (f) => [f.write('bad.pem', makeLeaf(root, ID, { keyUsage: ['keyAgreement'] }).pem)], /invalid \(leaf_digital_signature_missing\)/],
];
for (const [title, args, message] of invalid) {
  test(`exit 1 for ${title}`, async (t) => {
    const f = files(t);
    const extra = args(f);
    const defaults = [...(extra.includes('--bundle') ? [] : ['--bundle', f.bundle]), ...(extra.includes('--trust-domain') ? [] : ['--trust-domain', 'example.org'])];
    const r = await run(['svid', 'verify', ...defaults, ...extra]);
    t.is(r.code, 1, r.stderr);
    t.is(r.stdout, '');
    t.regex(r.stderr, message);
    t.notRegex(r.stderr, STACK_TRACE);
  });
}

const unreadable: Array<[string, (f: Files) => string[], RegExp]> = [
  ['a missing chain file', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', path.join(f.dir, 'nope.pem')], /cannot read the certificate file .*nope\.pem: no such file/],
  ['a missing bundle file', (f) => ['--bundle', path.join(f.dir, 'nope.pem'), '--trust-domain', 'example.org', f.chain], /cannot read the trust bundle .*nope\.pem: no such file/],
  ['a directory as the chain', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', f.dir], /cannot read the certificate file .*: it is a directory/],
  ['a chain file that is not PEM', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', f.write('x.pem', 'hello')], /x\.pem: no PEM block found/],
  ['a chain file holding a key', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', f.write('k.pem', privateKeyPkcs8Pem(generateKeyPairSync().privateKey))], /expected "CERTIFICATE", found "PRIVATE KEY"/],
  ['a bundle that is not PEM', (f) => ['--bundle', f.write('b.pem', 'not pem'), '--trust-domain', 'example.org', f.chain], /b\.pem: no PEM block found/],
  ['a bundle holding a leaf', (f) => ['--bundle', f.write('b.pem', leaf.pem), '--trust-domain', 'example.org', f.chain], /cannot be a root: it is not a CA/],
  ['no --bundle', (f) => ['--trust-domain', 'example.org', f.chain], /bundle: required/],
  ['no --trust-domain', (f) => ['--bundle', f.bundle, f.chain], /trust-domain: required/],
  ['a bad --trust-domain', (f) => ['--bundle', f.bundle, '--trust-domain', 'Example.org', f.chain], /trust-domain \(flag --trust-domain\): invalid SPIFFE ID/],
  ['a bad --at', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', '--at', 'yesterday', f.chain], /at \(flag --at\): expected an RFC 3339 time/],
  ['no chain file', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org'], /expected one LEAF\.pem file .* got 0/],
  ['two chain files', (f) => ['--bundle', f.bundle, '--trust-domain', 'example.org', f.chain, f.chain], /expected one LEAF\.pem file .* got 2/],
  ['an unknown flag', (f) => ['--bundel', f.bundle, '--trust-domain', 'example.org', f.chain], /--bundel: unknown flag \(did you mean --bundle\?\)/],
];
for (const [title, args, message] of unreadable) {
  test(`exit 2 for ${title}`, async (t) => {
    const r = await run(['svid', 'verify', ...args(files(t))]);
    t.is(r.code, 2, r.stderr);
    t.is(r.stdout, '');
    t.regex(r.stderr, /^meshid svid verify: /);
    t.regex(r.stderr, message);
    t.notRegex(r.stderr, STACK_TRACE);
  });
}

test('--help describes every flag and the exit codes', async (t) => {
  const r = await run(['svid', 'verify', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^Usage: meshid svid verify \[flags\] LEAF\.pem/);
  for (const flag of ['--bundle FILE', '--trust-domain TD', '--at TIME', '--help']) t.true(r.stdout.includes(flag), flag);
  t.regex(r.stdout, /Exit status: 0 valid .* 1 invalid .* 2 unreadable/s);
  t.notRegex(r.stdout, /MESHID_|--config/, 'a one-shot tool reads flags only');
});

test('RFC 3339 times: offsets, fractions, and impossible dates refused', (t) => {
  t.is(parseRfc3339('2025-01-31T12:00:00Z'), Date.UTC(2025, 0, 31, 12));
  t.is(parseRfc3339('2025-01-31T13:00:00.5+01:00'), Date.UTC(2025, 0, 31, 12, 0, 0, 500));
  t.is(parseRfc3339('2025-01-31 12:00:00z'), Date.UTC(2025, 0, 31, 12));
  for (const bad of ['2025-02-30T00:00:00Z', '2025-01-31', '2025-01-31T12:00:00', '2025-13-01T00:00:00Z', '2025-01-31T24:00:00Z', '1738324800']) {
    t.throws(() => parseRfc3339(bad), undefined, bad);
  }
});

// The real executable, once per exit code.
const execFileAsync = promisify(execFile);
async function spawnMeshid(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [MAIN, 'svid', 'verify', ...args], { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test('the executable: exit 0, 1 and 2', async (t) => {
  const f = files(t);
  const expired = f.write('expired.pem', chainPem(makeLeaf(inter, ID, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }), inter));
  const [ok, bad, unreadableFile] = await Promise.all([
    spawnMeshid(['--bundle', f.bundle, '--trust-domain', 'example.org', f.chain]),
    spawnMeshid(['--bundle', f.bundle, '--trust-domain', 'example.org', expired]),
    spawnMeshid(['--bundle', f.bundle, '--trust-domain', 'example.org', path.join(f.dir, 'missing.pem')]),
  ]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, new RegExp(`^valid: ${ID}, expires \\S+ \\(in \\d+h\\d+m\\), root "[^"]+" sha256:[0-9a-f]{64}\\n$`));
  t.is(bad.code, 1, bad.stderr);
  t.regex(bad.stderr, /^meshid svid verify: invalid \(expired\): leaf "spiffe:\/\/example\.org\/ns\/shop\/sa\/frontend" expired at /);
  t.is(unreadableFile.code, 2, unreadableFile.stderr);
  t.regex(unreadableFile.stderr, /^meshid svid verify: cannot read the certificate file .*missing\.pem: no such file\n$/);
  for (const r of [ok, bad, unreadableFile]) t.notRegex(r.stderr, STACK_TRACE);
});

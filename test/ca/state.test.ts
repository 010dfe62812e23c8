/** The state dir: created private, reused across restarts, refused when inconsistent; intermediate mode. */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { startCa } from '../../src/ca/server.js';
import { loadOrCreateState, STATE_FILES } from '../../src/ca/state.js';
import { privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { MeshidError } from '../../src/lib/errors.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { baseConfig, csrFor, FRONTEND, leafOf, STATIC_TOKEN, startHarness } from './harness.js';

const TD = 'example.org';
const mode = (p: string) => fs.statSync(p).mode & 0o777;

test('first start creates the root with 0600 files in a 0700 dir; later starts reuse it', async (t) => {
  const dir = path.join(tempDir(t), 'nested', 'state');
  const first = loadOrCreateState(dir, TD, Date.now());
  t.true(first.created);
  t.is(first.mode, 'root');
  t.is(mode(dir), 0o700);
  t.is(mode(path.join(dir, STATE_FILES.rootKey)), 0o600);
  t.is(mode(path.join(dir, STATE_FILES.rootCert)), 0o600);
  t.is(fs.readFileSync(path.join(dir, STATE_FILES.bundle), 'utf8'), first.bundlePem);
  const root = first.material.chain[0]!;
  t.deepEqual(root.basicConstraints, { ca: true });
  t.deepEqual([...root.keyUsage!].sort(), ['cRLSign', 'keyCertSign']);
  t.deepEqual(root.sans, [{ type: 'uri', value: `spiffe://${TD}` }]);
  t.regex(root.subjectText, /O=meshid,CN=meshid root CA example\.org/);
  t.is(first.warnings.length, 0);

  const second = loadOrCreateState(dir, TD, Date.now());
  t.false(second.created);
  t.is(second.bundlePem, first.bundlePem, 'same root');
});

test('the CA restarted on the same state dir issues under the same root', async (t) => {
  const h1 = await startHarness(t);
  await h1.ca.close();
  const h2 = await startCa(h1.config);
  t.teardown(() => h2.close());
  t.is(h2.bundlePem, h1.ca.bundlePem);
});

test('inconsistent state dirs are refused with a message naming the problem', (t) => {
  const refuse = (dir: string, td: string, message: RegExp) => {
    const e = t.throws(() => loadOrCreateState(dir, td, Date.now()), { instanceOf: MeshidError });
    t.regex(e!.message, message);
    t.is(e!.kind, 'failed_precondition');
  };
  const base = tempDir(t);
  const a = path.join(base, 'a');
  const b = path.join(base, 'b');
  loadOrCreateState(a, TD, Date.now());
  loadOrCreateState(b, TD, Date.now());

  // key of one root, certificate of another
  fs.copyFileSync(path.join(b, STATE_FILES.rootKey), path.join(a, STATE_FILES.rootKey));
  refuse(a, TD, /root-key\.pem does not match the public key in root-cert\.pem/);

  // a root made for another trust domain
  refuse(b, 'other.org', /root-cert\.pem is for spiffe:\/\/example\.org, not for the trust domain other\.org/);

  // half a state
  fs.rmSync(path.join(b, STATE_FILES.rootKey));
  refuse(b, TD, /root-key\.pem is missing while root-cert\.pem exists/);

  // garbage
  const c = path.join(base, 'c');
  loadOrCreateState(c, TD, Date.now());
  fs.writeFileSync(path.join(c, STATE_FILES.rootCert), 'not a certificate');
  refuse(c, TD, /root-cert\.pem: no PEM block found/);

  // an intermediate without its chain
  const d = path.join(base, 'd');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, STATE_FILES.intermediateKey), privateKeyPkcs8Pem(makeRoot().key.privateKey));
  refuse(d, TD, /intermediate-chain\.pem is missing/);
});

test('intermediate mode: leaf, intermediate, root in the response; NotAfter capped at the intermediate', async (t) => {
  const dir = tempDir(t);
  const stateDir = path.join(dir, 'state');
  const root = makeRoot(TD);
  const inter = makeIntermediate(root, TD, { notAfter: new Date(Date.now() + 30 * 60_000) });
  fs.mkdirSync(stateDir, { mode: 0o700 });
  fs.writeFileSync(path.join(stateDir, STATE_FILES.intermediateKey), privateKeyPkcs8Pem(inter.key.privateKey), { mode: 0o600 });
  fs.writeFileSync(path.join(stateDir, STATE_FILES.intermediateChain), inter.pem + root.pem);
  const h = await startHarness(t, { stateDir }, { clock: new FakeClock(Date.now()) });
  t.is(h.ca.bundlePem, root.pem, 'the bundle is the operator root');

  const r = await h.client.createCertificate(csrFor(FRONTEND).pem, { kind: 'token', token: STATIC_TOKEN });
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(r.chainPem, [r.chainPem[0], inter.pem, root.pem]);
  const v = opensslVerify(tempDir(t), { roots: root.pem, intermediates: inter.pem, leaf: r.chainPem[0]! });
  t.true(v.ok, v.output);
  const leaf = leafOf(r.chainPem);
  t.is(leaf.notAfter.getTime(), Math.floor(inter.cert.notAfter.getTime() / 1000) * 1000, 'capped at the issuer NotAfter');
  t.true(leaf.verifySignedBy(inter.key.publicKey));
  t.like(h.logs.find((l) => l.event === 'certificate_issued'), { cappedByIssuer: true });

  // Renewal over mTLS presents leaf + intermediate; TLS builds the path to the operator root.
  const { mtlsAuth } = await import('./harness.js');
  const first = csrFor(FRONTEND);
  const r1 = await h.client.createCertificate(first.pem, { kind: 'token', token: STATIC_TOKEN });
  if (!r1.ok) return t.fail(r1.message);
  const renewed = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth(r1.chainPem, first.key));
  t.true(renewed.ok, renewed.ok ? '' : renewed.message);
  t.like(h.logs.filter((l) => l.event === 'certificate_issued').at(-1), { auth: 'mtls', identity: FRONTEND });
});

test('intermediate chains that do not hold together are refused', (t) => {
  const root = makeRoot(TD);
  const inter = makeIntermediate(root, TD);
  const otherRoot = makeRoot(TD);
  const setup = (key: string, chain: string) => {
    const dir = tempDir(t);
    fs.writeFileSync(path.join(dir, STATE_FILES.intermediateKey), key);
    fs.writeFileSync(path.join(dir, STATE_FILES.intermediateChain), chain);
    return dir;
  };
  const key = privateKeyPkcs8Pem(inter.key.privateKey);
  const cases: Array<[string, string, RegExp]> = [
    [key, inter.pem + otherRoot.pem, /certificate 1 is not issued by certificate 2/],
    [key, inter.pem, /at least 2 certificates/],
    [privateKeyPkcs8Pem(root.key.privateKey), inter.pem + root.pem, /intermediate-key\.pem does not match/],
  ];
  const leaf = makeLeaf(root);
  cases.push([privateKeyPkcs8Pem(leaf.key.privateKey), leaf.pem + root.pem, /certificate 1 cannot issue certificates: it is not a CA/]);
  // An intermediate agents would refuse (no keyUsage) must not start the CA: every chain it issued would be rejected.
  const noKeyUsage = makeIntermediate(root, TD, { keyUsage: null });
  cases.push([privateKeyPkcs8Pem(noKeyUsage.key.privateKey), noKeyUsage.pem + root.pem, /certificate 1 cannot issue certificates: it is a CA without a keyUsage extension/]);
  for (const [k, chain, message] of cases) {
    const e = t.throws(() => loadOrCreateState(setup(k, chain), TD, Date.now()));
    t.regex(e!.message, message);
  }
  const foreign = makeRoot('other.org');
  const foreignInter = makeIntermediate(foreign, 'other.org');
  const e = t.throws(() => loadOrCreateState(setup(privateKeyPkcs8Pem(foreignInter.key.privateKey), foreignInter.pem + foreign.pem), TD, Date.now()));
  t.regex(e!.message, /is for spiffe:\/\/other\.org, not for the trust domain example\.org/);
});

test('startCa refuses unusable files and names before binding', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[Parameters<typeof baseConfig>[1], RegExp]> = [
    [{ jwtKeys: path.join(dir, 'missing.json'), jwtIssuer: 'x' }, /--jwt-keys .*missing\.json: cannot read \(ENOENT\)/],
    [{ san: ['bad name!'] }, /--san "bad name!" is neither a DNS name nor an IP address/],
  ];
  fs.writeFileSync(path.join(dir, 'jwks.json'), '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}');
  cases.push([{ jwtKeys: path.join(dir, 'jwks.json'), jwtIssuer: 'x' }, /key 1 is symmetric \(kty "oct"\)/]);
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), 'tokens:\n  short: spiffe://example.org/ns/a/sa/b\n');
  cases.push([{ staticTokens: path.join(dir, 'tokens.yaml') }, /entry 1: a token needs at least 8 characters/]);
  fs.writeFileSync(path.join(dir, 'tokens2.yaml'), 'tokens:\n  long-enough-token: spiffe://other.org/ns/a/sa/b\n');
  cases.push([{ staticTokens: path.join(dir, 'tokens2.yaml') }, /entry 1: spiffe:\/\/other\.org\/ns\/a\/sa\/b is not in the trust domain example\.org/]);
  for (const [overrides, message] of cases) {
    const e = await t.throwsAsync(startCa(baseConfig(dir, overrides)), { instanceOf: MeshidError });
    t.regex(e!.message, message);
  }
});

test('a port in use is a startup failure naming the address', async (t) => {
  const h = await startHarness(t);
  const e = await t.throwsAsync(startCa(baseConfig(tempDir(t), { listen: { host: '127.0.0.1', port: h.ca.port } })), { instanceOf: MeshidError });
  t.regex(e!.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${h.ca.port} \\(--listen\\)`), 'names the flag that set the address');
});

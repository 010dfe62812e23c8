import test from 'ava';
import type { ErrorCode } from '../../src/lib/errors.js';
import crypto from 'node:crypto';
import {
  certificateFingerprint,
  parseTrustBundle,
  TrustBundleError,
  trustBundleFromCertificates,
} from '../../src/identity/bundle.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { encodePem } from '../../src/identity/pem.js';
import { verifyX509Svid } from '../../src/identity/svid-verify.js';
import { opensslVerify } from '../helpers/openssl.js';
import { chainPem, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';

const old = makeRoot('example.org', { commonName: 'root 2024' });
const fresh = makeRoot('example.org', { commonName: 'root 2025' });

test('parses roots, removes duplicates, fingerprints by SHA-256 of DER, renders PEM that parses back', (t) => {
  const b = parseTrustBundle('example.org', `# comment lines are ignored\n${old.pem}${fresh.pem}${old.pem}`);
  t.is(b.trustDomain, 'example.org');
  t.deepEqual(b.roots.map((r) => r.der), [old.der, fresh.der]);
  t.deepEqual(b.fingerprints, [old, fresh].map((r) => crypto.createHash('sha256').update(r.der).digest('hex')));
  t.is(certificateFingerprint(old.cert), b.fingerprints[0]!);
  t.is(b.pem, chainPem(old, fresh));
  t.is(parseTrustBundle('example.org', b.pem).version, b.version);
  t.true(Object.isFrozen(b) && Object.isFrozen(b.roots));
});

test('the version ignores order and duplicates, and changes with the set of roots or the trust domain', (t) => {
  const ab = parseTrustBundle('example.org', chainPem(old, fresh));
  const ba = parseTrustBundle('example.org', chainPem(fresh, old, fresh));
  const a = parseTrustBundle('example.org', old.pem);
  t.is(ab.version, ba.version);
  t.regex(ab.version, /^[0-9a-f]{64}$/);
  t.not(ab.version, a.version);
  t.not(parseTrustBundle('example.org', old.pem).version, parseTrustBundle('other.example', makeRoot('other.example').pem).version);
  const noSanRoot = makeRoot('example.org', { sans: [] });
  t.not(parseTrustBundle('example.org', noSanRoot.pem).version, parseTrustBundle('example.com', noSanRoot.pem).version);
});

test('a rotation bundle verifies leaves under either root, here and in openssl', (t) => {
  const b = parseTrustBundle('example.org', chainPem(old, fresh));
  const dir = tempDir(t);
  for (const root of [old, fresh]) {
    const inter = makeIntermediate(root);
    const leaf = makeLeaf(inter);
    t.is(verifyX509Svid([leaf.cert, inter.cert], b.roots, { trustDomain: b.trustDomain }).path[2], b.roots[root === old ? 0 : 1]);
    const r = opensslVerify(dir, { roots: b.pem, intermediates: inter.pem, leaf: leaf.pem });
    t.true(r.ok, r.output);
  }
});

const refusals: Array<[string, () => string, ErrorCode, RegExp, string?]> = [
  ['text without PEM', () => 'hello', 'bundle_not_pem', /no PEM block found/],
  ['bad base64', () => '-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n', 'bundle_not_pem', /not valid base64/],
  ['a private key', () => privateKeyPkcs8Pem(generateKeyPairSync().privateKey), 'bundle_not_certificate', /expected "CERTIFICATE", found "PRIVATE KEY"/],
  ['a certificate followed by a key', () => old.pem + privateKeyPkcs8Pem(generateKeyPairSync().privateKey), 'bundle_not_certificate', /found "PRIVATE KEY"/],
  ['garbage inside CERTIFICATE armor', () => encodePem('CERTIFICATE', Buffer.from('garbage')), 'bundle_not_certificate', /certificate 1: .*not valid DER/],
  ['an SVID leaf', () => old.pem + makeLeaf(old).pem, 'bundle_root_not_ca', /certificate 2 .* cannot be a root: it is not a CA \(basicConstraints cA=false\)/],
  ['a CA without keyCertSign', () => makeRoot('example.org', { keyUsage: ['cRLSign'] }).pem, 'bundle_root_not_ca', /lacks keyCertSign/],
  ['a root of another trust domain', () => makeRoot('other.org').pem, 'bundle_root_trust_domain_mismatch', /belongs to trust domain "other.org"/],
  ['an invalid trust domain', () => old.pem, 'bundle_trust_domain_invalid', /trust domain may contain only/, 'Example.org'],
];

for (const [title, pem, code, message, td] of refusals) {
  test(`refuses ${title} with ${code}`, (t) => {
    const e = t.throws(() => parseTrustBundle(td ?? 'example.org', pem(), '/etc/meshid/bundle.pem'), { instanceOf: TrustBundleError });
    t.is(e?.code, code);
    t.is(e?.kind, 'invalid_argument');
    t.regex(e!.message, message);
    t.regex(e!.message, /\/etc\/meshid\/bundle\.pem/, 'the message names the source');
  });
}

test('an empty list of certificates is refused', (t) => {
  t.is(t.throws(() => trustBundleFromCertificates('example.org', []), { instanceOf: TrustBundleError })?.code, 'bundle_empty');
});

import crypto from 'node:crypto';
import test from 'ava';
import { generateKeyPairSync, type KeyPair } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { type ErrorCode, MeshidError } from '../../src/lib/errors.js';
import { acceptIssuedChain } from '../../src/rotation/issued-svid.js';
import { opensslVerify } from '../helpers/openssl.js';
import { type CertOptions, chainPem, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';

const ID = parseSpiffeId('spiffe://example.org/ns/shop/sa/frontend');
const NOW = Date.now();
const HOUR = 3_600_000;

function setup(leafOptions: CertOptions = {}, id = ID.uri) {
  const root = makeRoot();
  const key = generateKeyPairSync();
  const leaf = makeLeaf(root, id, { key, notBefore: new Date(NOW - 10_000), notAfter: new Date(NOW + HOUR), ...leafOptions });
  return { root, key, leaf };
}

function refusal(t: import('ava').ExecutionContext, fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  const e = t.throws(fn, { instanceOf: MeshidError });
  t.is(e?.code, code, e?.message);
  if (message) t.regex(e?.message ?? '', message);
}

test('a leaf + root answer becomes an SVID: chain without root, our key, earliest expiry, serial as version', (t) => {
  const { root, key, leaf } = setup();
  const { svid, root: acceptedRoot } = acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key }, NOW);
  t.is(svid.spiffeId, ID.uri);
  t.is(svid.certChainPem, leaf.pem);
  t.is(svid.version, leaf.cert.serial);
  t.is(svid.expiresAt, NOW + HOUR - ((NOW + HOUR) % 1000)); // notAfter has second precision
  t.true(acceptedRoot.der.equals(root.der));
  t.true(new crypto.X509Certificate(leaf.pem).checkPrivateKey(crypto.createPrivateKey(svid.privateKeyPem)));
  t.regex(svid.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/); // PKCS#8
  const r = opensslVerify(tempDir(t), { roots: root.pem, leaf: svid.certChainPem, purpose: 'sslclient' });
  t.true(r.ok, r.output);
});

test('with an intermediate: served chain is leaf + intermediate, expiry is the earliest on the whole chain', (t) => {
  const root = makeRoot();
  const inter = makeIntermediate(root, 'example.org', { notAfter: new Date(NOW + 30 * 60_000) });
  const key = generateKeyPairSync();
  const leaf = makeLeaf(inter, ID.uri, { key, notAfter: new Date(NOW + HOUR) });
  const { svid } = acceptIssuedChain([leaf.pem, inter.pem, root.pem], { spiffeId: ID, key }, NOW);
  t.is(svid.certChainPem, chainPem(leaf, inter));
  t.is(svid.expiresAt, inter.cert.notAfter.getTime());
  const r = opensslVerify(tempDir(t), { roots: root.pem, leaf: leaf.pem, intermediates: inter.pem });
  t.true(r.ok, r.output);
});

test('refuses a chain of fewer than two certificates (Istio refuses them too)', (t) => {
  const { key, leaf } = setup();
  refusal(t, () => acceptIssuedChain([], { spiffeId: ID, key }, NOW), 'ca_chain_too_short');
  refusal(t, () => acceptIssuedChain([leaf.pem], { spiffeId: ID, key }, NOW), 'ca_chain_too_short', /1 certificate/);
});

test('refuses garbage elements, naming the element', (t) => {
  const { root, key, leaf } = setup();
  refusal(t, () => acceptIssuedChain(['hello', root.pem], { spiffeId: ID, key }, NOW), 'ca_response_malformed', /element 1/);
  refusal(t, () => acceptIssuedChain([leaf.pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], { spiffeId: ID, key }, NOW), 'ca_response_malformed', /element 2/);
  refusal(t, () => acceptIssuedChain([leaf.pem + root.pem, root.pem], { spiffeId: ID, key }, NOW), 'ca_response_malformed', /holds 2 certificates/);
  refusal(t, () => acceptIssuedChain([leaf.pem, 42 as unknown as string], { spiffeId: ID, key }, NOW), 'ca_response_malformed', /not a string/);
});

test('refuses a leaf for another identity, or with two URI SANs', (t) => {
  const other = setup({}, 'spiffe://example.org/ns/shop/sa/admin');
  refusal(t, () => acceptIssuedChain([other.leaf.pem, other.root.pem], { spiffeId: ID, key: other.key }, NOW), 'ca_wrong_identity', /sa\/admin; we asked for .*sa\/frontend/);
  const two = setup({ sans: [{ type: 'uri', value: ID.uri }, { type: 'uri', value: 'spiffe://example.org/x' }] });
  refusal(t, () => acceptIssuedChain([two.leaf.pem, two.root.pem], { spiffeId: ID, key: two.key }, NOW), 'ca_wrong_identity');
  const none = setup({ sans: [{ type: 'dns', value: 'frontend.shop' }] });
  refusal(t, () => acceptIssuedChain([none.leaf.pem, none.root.pem], { spiffeId: ID, key: none.key }, NOW), 'ca_wrong_identity', /no URI SAN/);
});

test('refuses a leaf that carries another public key', (t) => {
  const { root, leaf } = setup();
  const ours: KeyPair = generateKeyPairSync();
  refusal(t, () => acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key: ours }, NOW), 'ca_wrong_key');
});

test('refuses a chain whose last element is not a self-signed root', (t) => {
  const root = makeRoot();
  const inter = makeIntermediate(root);
  const key = generateKeyPairSync();
  const leaf = makeLeaf(inter, ID.uri, { key });
  refusal(t, () => acceptIssuedChain([leaf.pem, inter.pem], { spiffeId: ID, key }, NOW), 'ca_root_not_self_signed');
});

const untrusted: Array<[string, () => { pems: string[]; key: KeyPair }, RegExp]> = [
  [
    'a leaf signed by another key than the root (forged)',
    () => {
      const { root, key, leaf } = setup({ signWith: generateKeyPairSync().privateKey });
      return { pems: [leaf.pem, root.pem], key };
    },
    /signature of leaf .* does not verify/,
  ],
  ['an expired leaf', () => withLeaf({ notBefore: new Date(NOW - 2 * HOUR), notAfter: new Date(NOW - 1) }), /expired/],
  ['a leaf not valid yet', () => withLeaf({ notBefore: new Date(NOW + 60_000) }), /not valid before/],
  ['a leaf that is a CA', () => withLeaf({ basicConstraints: { ca: true } }), /is a CA/],
  ['a leaf with keyCertSign', () => withLeaf({ keyUsage: ['digitalSignature', 'keyCertSign'] }), /keyCertSign/],
  ['a leaf without digitalSignature', () => withLeaf({ keyUsage: ['keyEncipherment'] }), /digitalSignature/],
  [
    'an intermediate that is not a CA',
    () => {
      const root = makeRoot();
      const inter = makeIntermediate(root, 'example.org', { basicConstraints: null });
      const key = generateKeyPairSync();
      return { pems: [makeLeaf(inter, ID.uri, { key }).pem, inter.pem, root.pem], key };
    },
    /not a CA/,
  ],
  [
    'an intermediate below a root with pathLen 0',
    () => {
      const root = makeRoot('example.org', { basicConstraints: { ca: true, pathLen: 0 } });
      const inter = makeIntermediate(root);
      const key = generateKeyPairSync();
      return { pems: [makeLeaf(inter, ID.uri, { key }).pem, inter.pem, root.pem], key };
    },
    /allows 0 intermediate CAs/,
  ],
  [
    'an expired root',
    () => {
      const root = makeRoot('example.org', { notBefore: new Date(NOW - 3 * HOUR), notAfter: new Date(NOW - HOUR) });
      const key = generateKeyPairSync();
      return { pems: [makeLeaf(root, ID.uri, { key, notAfter: new Date(NOW + HOUR) }).pem, root.pem], key };
    },
    /root .*expired/,
  ],
];

function withLeaf(o: CertOptions): { pems: string[]; key: KeyPair } {
  const { root, key, leaf } = setup(o);
  return { pems: [leaf.pem, root.pem], key };
}

for (const [name, make, re] of untrusted) {
  test(`refuses ${name}`, (t) => {
    const { pems, key } = make();
    refusal(t, () => acceptIssuedChain(pems, { spiffeId: ID, key }, NOW), 'ca_chain_untrusted', re);
  });
}

test('refuses a root that cannot stand in our trust domain bundle (another trust domain, or no keyCertSign)', (t) => {
  const foreign = makeRoot('other.org');
  const key = generateKeyPairSync();
  const leaf = makeLeaf(foreign, ID.uri, { key });
  refusal(t, () => acceptIssuedChain([leaf.pem, foreign.pem], { spiffeId: ID, key }, NOW), 'ca_root_unusable', /trust domain "other.org"/);
  const weak = makeRoot('example.org', { keyUsage: ['digitalSignature'] });
  const leaf2 = makeLeaf(weak, ID.uri, { key });
  refusal(t, () => acceptIssuedChain([leaf2.pem, weak.pem], { spiffeId: ID, key }, NOW), 'ca_root_unusable', /keyCertSign/);
});

test('a chain that verifies only through another trusted root is refused: the last element must be its root', (t) => {
  const { root, key, leaf } = setup();
  const unrelated = makeRoot('example.org', { commonName: 'unrelated' });
  refusal(t, () => acceptIssuedChain([leaf.pem, unrelated.pem], { spiffeId: ID, key }, NOW), 'ca_chain_untrusted', /./);
  t.is(acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key }, NOW).svid.version, leaf.cert.serial);
});

test('with a configured bundle, only its roots may issue: a chain from another root is refused as ca_root_not_configured', (t) => {
  const { root, key, leaf } = setup();
  const listed = makeRoot('example.org', { commonName: 'listed' });
  refusal(
    t,
    () => acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key, configuredRoots: [listed.cert] }, NOW),
    'ca_root_not_configured',
    /leaf serial [0-9a-f]+\) ends at root "O=example\.org,CN=test root example\.org", which is not in the configured trust bundle \(1 root\(s\)\)/,
  );
  const accepted = acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key, configuredRoots: [listed.cert, root.cert] }, NOW);
  t.is(accepted.svid.version, leaf.cert.serial);
  t.is(acceptIssuedChain([leaf.pem, root.pem], { spiffeId: ID, key }, NOW).svid.version, leaf.cert.serial, 'without a configured bundle the CA\'s root is learned');
});

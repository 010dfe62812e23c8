import test from 'ava';
import { parseCertificate } from '../../src/identity/certificate.js';
import { createCsr, parseCsr } from '../../src/identity/csr.js';
import { MeshidError } from '../../src/lib/errors.js';
import { generateKeyPairSync, type KeyAlgorithm } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { encodePem } from '../../src/identity/pem.js';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ID = parseSpiffeId('spiffe://example.org/ns/shop/sa/frontend');

for (const alg of ['ec-p256', 'ec-p384', 'rsa-2048'] as KeyAlgorithm[]) {
  test(`CSR round trip with ${alg}, accepted by openssl req -verify`, (t) => {
    const key = generateKeyPairSync(alg);
    const csr = createCsr(ID, key);
    const parsed = parseCsr(csr.pem);
    t.true(parsed.verifySignature());
    t.true(parsed.subjectEmpty);
    t.deepEqual(parsed.sans, [{ type: 'uri', value: ID.uri }]);
    t.is(parsed.keyInfo.kind, alg.startsWith('ec') ? 'ec' : 'rsa');
    const dir = tempDir(t);
    const file = path.join(dir, 'csr.pem');
    fs.writeFileSync(file, csr.pem);
    const r = spawnSync('openssl', ['req', '-in', file, '-noout', '-verify', '-text'], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /URI:spiffe:\/\/example\.org\/ns\/shop\/sa\/frontend/);
    t.regex(r.stdout, /Subject Alternative Name: critical/);
  });
}

test('a CSR whose signature was made by another key does not verify', (t) => {
  const key = generateKeyPairSync();
  const other = generateKeyPairSync();
  const csr = createCsr(ID, { publicKey: key.publicKey, privateKey: other.privateKey });
  t.false(parseCsr(csr.pem).verifySignature());
});

test('not-a-CSR inputs are specific invalid_argument errors', (t) => {
  const root = makeRoot();
  for (const [input, code] of [
    ['hello', 'csr_not_pem'],
    [root.pem, 'csr_wrong_type'],
    [encodePem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])), 'csr_malformed'],
    [encodePem('CERTIFICATE REQUEST', Buffer.from('garbage')), 'csr_malformed'],
  ] as const) {
    const e = t.throws(() => parseCsr(input), { instanceOf: MeshidError });
    t.is(e?.code, code, input.slice(0, 40));
    t.is(e?.kind, 'invalid_argument');
  }
});

test('built chains pass openssl verify -x509_strict and parse back', (t) => {
  const root = makeRoot('example.org');
  const inter = makeIntermediate(root, 'example.org');
  const leaf = makeLeaf(inter, ID.uri);
  const r = opensslVerify(tempDir(t), { roots: root.pem, intermediates: inter.pem, leaf: leaf.pem });
  t.true(r.ok, r.output);
  const parsed = parseCertificate(leaf.der);
  t.deepEqual(parsed.sans, [{ type: 'uri', value: ID.uri }]);
  t.true(parsed.sanCritical);
  t.deepEqual(parsed.basicConstraints, { ca: false });
  t.deepEqual([...parsed.keyUsage!], ['digitalSignature']);
  t.true(parsed.verifySignedBy(inter.key.publicKey));
  t.false(parsed.verifySignedBy(root.key.publicKey));
  t.deepEqual(inter.cert.basicConstraints, { ca: true, pathLen: 0 });
});

test('SANs are read structurally: a URI holding ", URI:spiffe://..." stays one value', (t) => {
  const root = makeRoot('example.org');
  const sneaky = 'https://x.test/a, URI:spiffe://example.org/ns/admin/sa/root';
  const leaf = makeLeaf(root, ID.uri, { sans: [{ type: 'uri', value: sneaky }] });
  t.deepEqual(parseCertificate(leaf.der).sans, [{ type: 'uri', value: sneaky }]);
});

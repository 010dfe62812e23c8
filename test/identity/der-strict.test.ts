/** The DER decoder accepts DER only: each BER form a lenient parser would read is refused, naming it. */
import test from 'ava';
import { decodeDer, splitDer } from '../../src/identity/der.js';
import { parseCertificate } from '../../src/identity/certificate.js';
import { MeshidError } from '../../src/lib/errors.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function refused(t: import('ava').ExecutionContext, bytes: Buffer, detail: RegExp): void {
  const e = t.throws(() => decodeDer(bytes, 'value'), { instanceOf: MeshidError });
  t.is(e?.code, 'der_malformed');
  t.regex(e?.message ?? '', detail);
}

test('DER itself decodes (a SEQUENCE of BOOLEAN TRUE, INTEGER 128, NULL)', (t) => {
  t.notThrows(() => decodeDer(hex('30 09 0101ff 02020080 0500'), 'value'));
});

test('BER non-minimal length (long form for a short length) is refused', (t) => {
  refused(t, hex('30 8103 0101ff'), /non-minimal length/);
});

test('BER non-minimal length (leading zero length byte) is refused', (t) => {
  refused(t, hex('04 820003 616263'), /non-minimal length/);
});

test('BER indefinite length is refused', (t) => {
  refused(t, hex('30 80 0101ff 0000'), /indefinite length/);
});

test('BER BOOLEAN 0x0F (not 0xFF) is refused rather than read as true', (t) => {
  refused(t, hex('30 03 01010f'), /BOOLEAN other than 0x00 or 0xFF/);
});

test('BER constructed OCTET STRING is refused', (t) => {
  refused(t, hex('24 06 0401 61 0401 62'), /constructed encoding of primitive type 4/);
});

test('BER non-minimal INTEGER (redundant leading 0x00) is refused', (t) => {
  refused(t, hex('02 02 0001'), /non-minimal INTEGER/);
});

test('trailing bytes after the value are refused', (t) => {
  refused(t, hex('0500 00'), /trailing bytes/);
});

test('a certificate with a BER length inside is refused by parseCertificate', (t) => {
  const leaf = makeLeaf(makeRoot(), 'spiffe://example.org/ns/a/sa/b');
  // Re-encode the outer SEQUENCE length with one more length byte than needed (30 82 LL LL -> 30 83 00 LL LL).
  const der = leaf.der;
  t.is(der[1], 0x82);
  const ber = Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]);
  t.notThrows(() => parseCertificate(der));
  t.throws(() => parseCertificate(ber), { message: /not valid DER: non-minimal length/ });
});

test('splitDer refuses indefinite and non-minimal lengths', (t) => {
  t.throws(() => splitDer(hex('30 80 0000'), 'list'), { message: /indefinite length/ });
  t.throws(() => splitDer(hex('30 8101 00'), 'list'), { message: /non-minimal length/ });
});

test('our decoder builds the same tree as node-forge\'s for certificates, CSRs and tagged values', async (t) => {
  const forge = (await import('../../src/identity/forge-asn1.js')).default;
  const { createCsr } = await import('../../src/identity/csr.js');
  const { generateKeyPairSync } = await import('../../src/identity/keys.js');
  const { spiffeIdFromParts } = await import('../../src/identity/spiffe-id.js');
  type Plain = { tagClass: number; type: number; constructed: boolean; value: string | Plain[] };
  const plain = (n: import('../../src/identity/der.js').Asn1): Plain => ({
    tagClass: n.tagClass,
    type: n.type,
    constructed: n.constructed,
    value: Array.isArray(n.value) ? n.value.map(plain) : (n.value as string),
  });
  const root = makeRoot();
  const samples = [
    root.der,
    makeLeaf(root).der,
    createCsr(spiffeIdFromParts('example.org', ['ns', 'a', 'sa', 'b']), generateKeyPairSync('ec-p256')).der,
    createCsr(spiffeIdFromParts('example.org', ['ns', 'a', 'sa', 'b']), generateKeyPairSync('rsa-2048')).der,
    hex('a0 07 81 05 6869206869'), // [0] { [1] IMPLICIT "hi hi" }
    hex('30 06 1e04 00680069'), // a BMPString, which forge reads as UTF-16
  ];
  for (const der of samples) {
    const ours = decodeDer(der, 'value');
    const theirs = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')), { strict: true, parseAllBytes: true, decodeBitStrings: false } as unknown as boolean);
    t.deepEqual(plain(ours), plain(theirs));
  }
});


test('sequenceOf gives the bytes node-forge would for a SEQUENCE of the same values, at every length form', async (t) => {
  const { der, encodeDer, sequenceOf } = await import('../../src/identity/der.js');
  for (const size of [0, 1, 120, 125, 126, 300, 70_000]) {
    const items = [der.octets(Buffer.alloc(size, 7)), der.small(5)];
    t.deepEqual(sequenceOf(items.map(encodeDer)), encodeDer(der.seq(items)), `content of about ${size} bytes`);
  }
});

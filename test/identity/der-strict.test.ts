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

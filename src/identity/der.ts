/**
 * DER encoding and decoding through node-forge's asn1 module. We use forge for ASN.1 only (its pki
 * module cannot handle EC keys); all cryptography is node:crypto. forge's codec was the fastest
 * maintained one measured for our hot path: decoding a CSR takes about 4 us against about 100 us
 * for asn1js (see README, "Why node-forge's asn1").
 */
import type NodeForge from 'node-forge';
import forge from './forge-asn1.js';
import { MeshidError } from '../lib/errors.js';

export type Asn1 = NodeForge.asn1.Asn1;
const asn1 = forge.asn1;
const U = asn1.Class.UNIVERSAL;
const CTX = asn1.Class.CONTEXT_SPECIFIC;
export const Tag = asn1.Type;
export const TagClass = asn1.Class;

/** Decodes one complete DER value; trailing bytes or malformed encodings are errors. */
export function decodeDer(der: Uint8Array, what: string): Asn1 {
  try {
    // The typings lag the library: fromDer takes an options object since node-forge 0.10.
    const options = { strict: true, parseAllBytes: true, decodeBitStrings: false } as unknown as boolean;
    return asn1.fromDer(forge.util.createBuffer(Buffer.from(der).toString('binary')), options);
  } catch (e) {
    throw new MeshidError('der_malformed', `${what} is not valid DER: ${(e as Error).message}`);
  }
}

export function encodeDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

/** Bytes of a primitive value (forge keeps them as a binary string). */
export function bytesOf(node: Asn1): Buffer {
  if (typeof node.value !== 'string') throw shape('primitive value', 'constructed value');
  return Buffer.from(node.value, 'binary');
}

/**
 * The exact bytes of the index-th element inside a DER SEQUENCE (reading headers only), so a
 * signature is checked over the bytes that were signed rather than over a re-encoding.
 */
export function elementBytes(der: Buffer, index: number, what: string): Buffer {
  const [first, end] = contentRange(der, 0, what);
  for (let i = 0, start = first; start < end; i++) {
    const next = contentRange(der, start, what)[1];
    if (i === index) return der.subarray(start, next);
    start = next;
  }
  throw new MeshidError('der_malformed', `${what}: element ${index} is missing`);
}

/** [contentStart, contentEnd) of the TLV at offset (single-byte tags; lengths up to 4 bytes). */
function contentRange(der: Buffer, offset: number, what: string): [number, number] {
  const first = der[offset + 1];
  if (first === undefined) throw new MeshidError('der_malformed', `${what}: truncated`);
  let start = offset + 2;
  let length = first;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new MeshidError('der_malformed', `${what}: bad length`);
    length = der.readUIntBE(start, n);
    start += n;
  }
  if (start + length > der.length) throw new MeshidError('der_malformed', `${what}: truncated`);
  return [start, start + length];
}

/** The TLVs of a concatenation of DER values (the Workload API's certificate lists), each sliced whole. */
export function splitDer(der: Buffer, what: string): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0; start < der.length; ) {
    const end = contentRange(der, start, what)[1];
    out.push(der.subarray(start, end));
    start = end;
  }
  return out;
}

// ---- builders -------------------------------------------------------------------------------

const oidCache = new Map<string, string>();

export const der = {
  seq: (items: Asn1[]): Asn1 => asn1.create(U, Tag.SEQUENCE, true, items),
  set: (items: Asn1[]): Asn1 => asn1.create(U, Tag.SET, true, items),
  oid(dotted: string): Asn1 {
    let bytes = oidCache.get(dotted);
    if (bytes === undefined) {
      bytes = asn1.oidToDer(dotted).getBytes();
      oidCache.set(dotted, bytes);
    }
    return asn1.create(U, Tag.OID, false, bytes);
  },
  null: (): Asn1 => asn1.create(U, Tag.NULL, false, ''),
  bool: (v: boolean): Asn1 => asn1.create(U, Tag.BOOLEAN, false, v ? '\xff' : '\x00'),
  /** A non-negative INTEGER from big-endian magnitude bytes (a leading 0 is added when needed). */
  uint(bytes: Uint8Array): Asn1 {
    let b = Buffer.from(bytes);
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    if (b.length === 0) b = Buffer.from([0]);
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return asn1.create(U, Tag.INTEGER, false, b.toString('binary'));
  },
  small: (n: number): Asn1 => asn1.create(U, Tag.INTEGER, false, asn1.integerToDer(n).getBytes()),
  octets: (bytes: Uint8Array): Asn1 => asn1.create(U, Tag.OCTETSTRING, false, Buffer.from(bytes).toString('binary')),
  /** An OCTET STRING holding the DER of node (extension values). */
  wrap: (node: Asn1): Asn1 => asn1.create(U, Tag.OCTETSTRING, false, asn1.toDer(node).getBytes()),
  bits: (bytes: Uint8Array, unusedBits = 0): Asn1 =>
    asn1.create(U, Tag.BITSTRING, false, String.fromCharCode(unusedBits) + Buffer.from(bytes).toString('binary')),
  utf8: (s: string): Asn1 => asn1.create(U, Tag.UTF8, false, forge.util.encodeUtf8(s)),
  ia5: (s: string): Asn1 => asn1.create(U, Tag.IA5STRING, false, s),
  /** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
  time(d: Date): Asn1 {
    return d.getUTCFullYear() < 2050
      ? asn1.create(U, Tag.UTCTIME, false, asn1.dateToUtcTime(d))
      : asn1.create(U, Tag.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
  },
  /** [n] EXPLICIT or a constructed context tag around items. */
  ctx: (n: number, items: Asn1[]): Asn1 => asn1.create(CTX, n, true, items),
  /** [n] IMPLICIT primitive holding raw bytes. */
  ctxPrim: (n: number, bytes: string | Uint8Array): Asn1 =>
    asn1.create(CTX, n, false, typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('binary')),
};

// ---- readers --------------------------------------------------------------------------------

export function shape(expected: string, found: string): MeshidError {
  return new MeshidError('der_unexpected', `expected ${expected}, found ${found}`);
}

function describe(node: Asn1 | undefined): string {
  if (!node) return 'nothing';
  return `${node.tagClass === U ? 'universal' : 'tagged'} ${node.type}${node.constructed ? ' (constructed)' : ''}`;
}

export function expectTag(node: Asn1 | undefined, type: number, what: string, tagClass: number = U): Asn1 {
  if (!node || node.type !== type || node.tagClass !== tagClass) {
    throw new MeshidError('der_unexpected', `${what}: unexpected ASN.1 structure (${describe(node)})`);
  }
  return node;
}

/** Children of a SEQUENCE/SET/constructed tag. */
export function childrenOf(node: Asn1 | undefined, type: number, what: string, tagClass: number = U): Asn1[] {
  const n = expectTag(node, type, what, tagClass);
  if (!Array.isArray(n.value)) {
    throw new MeshidError('der_unexpected', `${what}: expected a constructed value`);
  }
  return n.value;
}

export function readOid(node: Asn1 | undefined, what: string): string {
  return asn1.derToOid(forge.util.createBuffer(expectTag(node, Tag.OID, what).value as string));
}

export function readBool(node: Asn1 | undefined, what: string): boolean {
  const v = expectTag(node, Tag.BOOLEAN, what).value as string;
  if (v.length !== 1) throw new MeshidError('der_unexpected', `${what}: malformed BOOLEAN`);
  return v !== '\x00';
}

/** A small non-negative INTEGER (path lengths, versions). */
export function readSmallInt(node: Asn1 | undefined, what: string): number {
  const b = bytesOf(expectTag(node, Tag.INTEGER, what));
  if (b.length === 0 || b.length > 4 || b[0]! & 0x80) {
    throw new MeshidError('der_unexpected', `${what}: integer out of range`);
  }
  return b.readUIntBE(0, b.length);
}

/** BIT STRING contents without the unused-bits byte, plus that count. */
export function readBits(node: Asn1 | undefined, what: string): { bytes: Buffer; unusedBits: number } {
  const raw = bytesOf(expectTag(node, Tag.BITSTRING, what));
  if (raw.length === 0 || raw[0]! > 7) throw new MeshidError('der_unexpected', `${what}: malformed BIT STRING`);
  return { bytes: raw.subarray(1), unusedBits: raw[0]! };
}

export function readTime(node: Asn1 | undefined, what: string): Date {
  if (node?.type === Tag.UTCTIME && node.tagClass === U) return asn1.utcTimeToDate(node.value as string);
  if (node?.type === Tag.GENERALIZEDTIME && node.tagClass === U) return asn1.generalizedTimeToDate(node.value as string);
  throw new MeshidError('der_unexpected', `${what}: expected UTCTime or GeneralizedTime`);
}

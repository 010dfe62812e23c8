/**
 * DER encoding and decoding. Decoding is ours: one strict walk over the bytes (checkDer's) that
 * builds node-forge's Asn1 nodes as it goes, so the CA's hot path does not pay for forge's
 * general BER decoder (binary strings, BIT STRING copies); encoding is node-forge's asn1 module,
 * and every decoded value is re-encoded with it and must give the same bytes, so a value our
 * decoder read differently from the library would be refused. We use forge for ASN.1 only (its
 * pki module cannot handle EC keys); all cryptography is node:crypto. forge's codec was the
 * fastest maintained one measured for our hot path: about 4 us per CSR against about 100 us for
 * asn1js (see README, "Why node-forge's asn1").
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

/**
 * Decodes one complete DER value; trailing bytes, malformed encodings and BER forms are errors.
 * DER only (X.690 10): definite, minimal lengths; BOOLEAN exactly 0x00 or 0xFF; minimal INTEGERs;
 * primitive encodings of primitive types; and re-encoding the decoded value must give the same
 * bytes. A parser that reads a certificate differently from OpenSSL is a security bug.
 */
export function decodeDer(der: Uint8Array, what: string): Asn1 {
  const bytes = Buffer.isBuffer(der) ? der : Buffer.from(der);
  const out: Asn1[] = [];
  const end = walk(bytes, 0, bytes.length, what, 0, out);
  if (end !== bytes.length) throw berError(what, end, 'trailing bytes after the value');
  const node = out[0]!;
  if (!encodeDer(node).equals(bytes)) {
    throw new MeshidError('der_malformed', `${what} is not valid DER: re-encoding gives different bytes (a BER form)`);
  }
  return node;
}

/** Universal types that DER encodes as constructed; every other universal type must be primitive. */
const CONSTRUCTED_TYPES = new Set([Tag.SEQUENCE, Tag.SET]);

/** Walks the TLVs of bytes and refuses every BER-only form, naming it and its offset. */
export function checkDer(bytes: Buffer, what: string): void {
  const end = walk(bytes, 0, bytes.length, what, 0);
  if (end !== bytes.length) throw berError(what, end, 'trailing bytes after the value');
}

function berError(what: string, offset: number, detail: string): MeshidError {
  return new MeshidError('der_malformed', `${what} is not valid DER: ${detail} at offset ${offset}`);
}

const MAX_DEPTH = 64;

/**
 * Checks one TLV at offset (within limit) and returns the offset just past it; with out, also
 * appends its node (as node-forge's decoder would build it: constructed values hold their
 * children, primitive ones their contents as a binary string).
 */
function walk(b: Buffer, offset: number, limit: number, what: string, depth: number, out?: Asn1[]): number {
  if (depth > MAX_DEPTH) throw berError(what, offset, `nesting deeper than ${MAX_DEPTH}`);
  const t = b[offset];
  if (t === undefined || offset >= limit) throw berError(what, offset, 'truncated');
  const tagClass = t & 0xc0;
  const constructed = (t & 0x20) !== 0;
  let type = t & 0x1f;
  let p = offset + 1;
  if (type === 0x1f) {
    // High tag number form: base-128, no leading 0x80, and only for numbers above 30.
    if (b[p] === 0x80) throw berError(what, offset, 'non-minimal tag number');
    type = 0;
    for (;;) {
      const c = b[p++];
      if (c === undefined || p > limit) throw berError(what, offset, 'truncated tag');
      type = type * 128 + (c & 0x7f);
      if (type > 0xffffff) throw berError(what, offset, 'tag number too large');
      if (!(c & 0x80)) break;
    }
    if (type < 0x1f) throw berError(what, offset, 'non-minimal tag number');
  }
  const first = b[p++];
  if (first === undefined || p > limit) throw berError(what, offset, 'truncated length');
  let length = first;
  if (first === 0x80) throw berError(what, offset, 'indefinite length');
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n > 4) throw berError(what, offset, 'length too large');
    if (p + n > limit) throw berError(what, offset, 'truncated length');
    if (b[p] === 0) throw berError(what, offset, 'non-minimal length (leading zero byte)');
    length = b.readUIntBE(p, n);
    if (length < 0x80) throw berError(what, offset, 'non-minimal length (long form for a short length)');
    p += n;
  }
  const end = p + length;
  if (end > limit) throw berError(what, offset, 'truncated (length beyond the end)');
  if (tagClass === 0x00) {
    if (CONSTRUCTED_TYPES.has(type) !== constructed) {
      throw berError(what, offset, constructed ? `constructed encoding of primitive type ${type}` : `primitive encoding of constructed type ${type}`);
    }
    if (type === Tag.BOOLEAN && (length !== 1 || (b[p] !== 0x00 && b[p] !== 0xff))) {
      throw berError(what, offset, 'BOOLEAN other than 0x00 or 0xFF');
    }
    if (type === Tag.INTEGER) {
      if (length === 0) throw berError(what, offset, 'empty INTEGER');
      if (length > 1 && ((b[p] === 0x00 && !(b[p + 1]! & 0x80)) || (b[p] === 0xff && b[p + 1]! & 0x80))) {
        throw berError(what, offset, 'non-minimal INTEGER');
      }
    }
    if (type === Tag.NULL && length !== 0) throw berError(what, offset, 'NULL with content');
  }
  if (constructed) {
    const children: Asn1[] | undefined = out ? [] : undefined;
    for (let q = p; q < end; ) q = walk(b, q, end, what, depth + 1, children);
    if (out) out.push({ tagClass, type, constructed, composed: true, value: children! } as Asn1);
  } else if (out) {
    out.push({ tagClass, type, constructed, composed: false, value: tagClass === 0x00 && type === Tag.BMPSTRING ? bmpString(b, p, end) : b.toString('latin1', p, end) } as Asn1);
  }
  return end;
}

/** A BMPString as node-forge decodes it (UTF-16 code units, which its encoder writes back as such). */
function bmpString(b: Buffer, start: number, end: number): string {
  let s = '';
  for (let i = start; i + 1 < end; i += 2) s += String.fromCharCode(b.readUInt16BE(i));
  return s;
}

export function encodeDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

/** A DER SEQUENCE of values already encoded (so that a signed part is not encoded a second time). */
export function sequenceOf(encoded: readonly Buffer[]): Buffer {
  let length = 0;
  for (const e of encoded) length += e.length;
  const header = length < 0x80 ? [0x30, length] : length < 0x100 ? [0x30, 0x81, length] : length < 0x10000 ? [0x30, 0x82, length >> 8, length & 0xff] : [0x30, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  if (length >= 0x1000000) throw new MeshidError('der_malformed', 'a SEQUENCE of 16 MB or more is not encoded here');
  return Buffer.concat([Buffer.from(header), ...encoded], header.length + length);
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
    if (n === 0) throw new MeshidError('der_malformed', `${what}: indefinite length`);
    if (n > 4 || n > 4 || start + n > der.length) throw new MeshidError('der_malformed', `${what}: bad length`);
    length = der.readUIntBE(start, n);
    if (der[start] === 0 || length < 0x80) throw new MeshidError('der_malformed', `${what}: non-minimal length`);
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
  if (v !== '\x00' && v !== '\xff') throw new MeshidError('der_unexpected', `${what}: BOOLEAN other than 0x00 or 0xFF`);
  return v === '\xff';
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

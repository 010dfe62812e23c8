/**
 * X.509 v3 extensions shared by CSRs and certificates: read structurally from DER (never from a
 * text rendering, where a URI can smuggle ", URI:spiffe://...") and built for issuance.
 */
import { MeshidError } from '../lib/errors.js';
import {
  type Asn1,
  bytesOf,
  childrenOf,
  decodeDer,
  der,
  readBits,
  readBool,
  readOid,
  readSmallInt,
  Tag,
  TagClass,
} from './der.js';
import { ipBytes, parseIp as parseIpAddress } from '../lib/ip.js';

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** DER of the extension value (the OCTET STRING contents). */
  readonly value: Buffer;
}

export type GeneralName =
  | { readonly type: 'uri'; readonly value: string }
  | { readonly type: 'dns'; readonly value: string }
  | { readonly type: 'email'; readonly value: string }
  | { readonly type: 'ip'; readonly value: string }
  | { readonly type: 'other'; readonly tag: number };

export interface BasicConstraints {
  readonly ca: boolean;
  readonly pathLen?: number;
}

export const KEY_USAGES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

/** Parses an Extensions SEQUENCE; a repeated extension is an error (RFC 5280 4.2). */
export function parseExtensions(node: Asn1, what: string): Extension[] {
  const out: Extension[] = [];
  const seen = new Set<string>();
  for (const ext of childrenOf(node, Tag.SEQUENCE, `${what} extensions`)) {
    const parts = childrenOf(ext, Tag.SEQUENCE, `${what} extension`);
    const oid = readOid(parts[0], `${what} extension id`);
    let critical = false;
    let valueNode = parts[1];
    if (parts.length === 3) {
      critical = readBool(parts[1], `${what} extension ${oid} critical flag`);
      valueNode = parts[2];
    } else if (parts.length !== 2) {
      throw new MeshidError('extension_malformed', `${what}: extension ${oid} is malformed`);
    }
    if (seen.has(oid)) throw new MeshidError('extension_repeated', `${what}: extension ${oid} appears twice`);
    seen.add(oid);
    const value = Tag.OCTETSTRING === valueNode?.type ? bytesOf(valueNode) : undefined;
    if (!value) throw new MeshidError('extension_malformed', `${what}: extension ${oid} has no value`);
    out.push({ oid, critical, value });
  }
  return out;
}

export function findExtension(exts: readonly Extension[], oid: string): Extension | undefined {
  return exts.find((e) => e.oid === oid);
}

export function parseGeneralNames(value: Buffer, what: string): GeneralName[] {
  const names: GeneralName[] = [];
  for (const gn of childrenOf(decodeDer(value, `${what} subjectAltName`), Tag.SEQUENCE, `${what} subjectAltName`)) {
    if (gn.tagClass !== TagClass.CONTEXT_SPECIFIC) {
      throw new MeshidError('san_malformed', `${what}: subjectAltName holds a non-GeneralName`);
    }
    names.push(readGeneralName(gn, what));
  }
  if (names.length === 0) throw new MeshidError('san_empty', `${what}: subjectAltName is empty`);
  return names;
}

function readGeneralName(gn: Asn1, what: string): GeneralName {
  const text = () => {
    if (gn.constructed || typeof gn.value !== 'string') {
      throw new MeshidError('san_malformed', `${what}: malformed GeneralName [${gn.type}]`);
    }
    return gn.value;
  };
  switch (gn.type) {
    case 1:
      return { type: 'email', value: ia5(text(), what) };
    case 2:
      return { type: 'dns', value: ia5(text(), what) };
    case 6:
      return { type: 'uri', value: ia5(text(), what) };
    case 7:
      return { type: 'ip', value: formatIp(Buffer.from(text(), 'binary'), what) };
    default:
      return { type: 'other', tag: gn.type };
  }
}

/** IA5String is 7-bit; anything else in a name is a forgery attempt or garbage. */
function ia5(s: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new MeshidError('san_malformed', `${what}: a SAN holds non-ASCII bytes`);
  return s;
}

export function parseBasicConstraints(value: Buffer, what: string): BasicConstraints {
  const parts = childrenOf(decodeDer(value, `${what} basicConstraints`), Tag.SEQUENCE, `${what} basicConstraints`);
  let i = 0;
  let ca = false;
  if (parts[i]?.type === Tag.BOOLEAN) ca = readBool(parts[i++], `${what} basicConstraints cA`);
  const pathLen = parts[i] ? readSmallInt(parts[i++], `${what} basicConstraints pathLenConstraint`) : undefined;
  if (i !== parts.length) throw new MeshidError('extension_malformed', `${what}: malformed basicConstraints`);
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

export function parseKeyUsage(value: Buffer, what: string): Set<KeyUsage> {
  const { bytes } = readBits(decodeDer(value, `${what} keyUsage`), `${what} keyUsage`);
  const set = new Set<KeyUsage>();
  KEY_USAGES.forEach((usage, bit) => {
    const byte = bytes[bit >> 3];
    if (byte !== undefined && byte & (0x80 >> (bit & 7))) set.add(usage);
  });
  return set;
}

export function parseExtKeyUsage(value: Buffer, what: string): string[] {
  return childrenOf(decodeDer(value, `${what} extKeyUsage`), Tag.SEQUENCE, `${what} extKeyUsage`).map((n) =>
    readOid(n, `${what} extKeyUsage`),
  );
}

export function parseSubjectKeyId(value: Buffer, what: string): Buffer {
  const node = decodeDer(value, `${what} subjectKeyIdentifier`);
  if (node.type !== Tag.OCTETSTRING) throw new MeshidError('extension_malformed', `${what}: malformed subjectKeyIdentifier`);
  return bytesOf(node);
}

export function parseAuthorityKeyId(value: Buffer, what: string): Buffer | undefined {
  const parts = childrenOf(decodeDer(value, `${what} authorityKeyIdentifier`), Tag.SEQUENCE, `${what} authorityKeyIdentifier`);
  const keyId = parts.find((p) => p.tagClass === TagClass.CONTEXT_SPECIFIC && p.type === 0);
  return keyId ? bytesOf(keyId) : undefined;
}

// ---- builders -------------------------------------------------------------------------------

export function extensionNode(oid: string, critical: boolean, value: Asn1): Asn1 {
  return critical ? der.seq([der.oid(oid), der.bool(true), der.wrap(value)]) : der.seq([der.oid(oid), der.wrap(value)]);
}

export function basicConstraintsValue(bc: BasicConstraints): Asn1 {
  const items: Asn1[] = [];
  if (bc.ca) items.push(der.bool(true)); // DER omits the DEFAULT FALSE
  if (bc.pathLen !== undefined) items.push(der.small(bc.pathLen));
  return der.seq(items);
}

export function keyUsageValue(usages: Iterable<KeyUsage>): Asn1 {
  const bytes = [0, 0];
  let last = -1;
  for (const u of usages) {
    const bit = KEY_USAGES.indexOf(u);
    bytes[bit >> 3]! |= 0x80 >> (bit & 7);
    last = Math.max(last, bit);
  }
  if (last < 0) return der.bits(new Uint8Array(0), 0);
  // DER: no trailing zero bits (X.690 11.2.2), so the unused-bits count follows the last set bit.
  const used = Buffer.from(bytes.slice(0, (last >> 3) + 1));
  return der.bits(used, 7 - (last & 7));
}

export function extKeyUsageValue(oids: readonly string[]): Asn1 {
  return der.seq(oids.map((o) => der.oid(o)));
}

export function generalNamesValue(names: readonly GeneralName[]): Asn1 {
  return der.seq(
    names.map((n) => {
      switch (n.type) {
        case 'email':
          return der.ctxPrim(1, n.value);
        case 'dns':
          return der.ctxPrim(2, n.value);
        case 'uri':
          return der.ctxPrim(6, n.value);
        case 'ip':
          return der.ctxPrim(7, parseIp(n.value));
        case 'other':
          throw new MeshidError('san_unsupported', `cannot encode GeneralName [${n.tag}]`);
      }
    }),
  );
}

export function authorityKeyIdValue(keyId: Uint8Array): Asn1 {
  return der.seq([der.ctxPrim(0, keyId)]);
}

export function subjectKeyIdValue(keyId: Uint8Array): Asn1 {
  return der.octets(keyId);
}

// ---- IP addresses (pure: no node:net) -------------------------------------------------------

export function formatIp(b: Buffer, what = 'address'): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    // Compress the longest run of zero groups (RFC 5952).
    let best = -1;
    let bestLen = 1;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== '0') {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen) [best, bestLen] = [i, j - i];
      i = j;
    }
    if (best < 0) return groups.join(':');
    return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  }
  throw new MeshidError('san_malformed', `${what}: an IP SAN of ${b.length} bytes`);
}

/** The bytes of an IP SAN, parsed by the project's one IP parser (src/lib/ip.ts). */
export function parseIp(s: string): Buffer {
  const ip = parseIpAddress(s);
  if (ip) return ipBytes(ip);
  throw new MeshidError('ip_invalid', `not an IP address: ${JSON.stringify(s)}`);
}

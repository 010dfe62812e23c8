/** X.501 Names: built one attribute per RDN, compared as DER (exact-match chaining). */
import { MeshidError } from '../lib/errors.js';
import { type Asn1, childrenOf, decodeDer, der, readOid, Tag } from './der.js';
import { OID } from './oids.js';

export interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

export function nameNode(attrs: readonly NameAttribute[]): Asn1 {
  return der.seq(attrs.map((a) => der.set([der.seq([der.oid(a.oid), der.utf8(a.value)])])));
}

export function commonNameAndOrg(commonName: string, organization?: string): NameAttribute[] {
  const attrs: NameAttribute[] = [];
  if (organization) attrs.push({ oid: OID.organization, value: organization });
  attrs.push({ oid: OID.commonName, value: commonName });
  return attrs;
}

const SHORT: Record<string, string> = { [OID.commonName]: 'CN', [OID.organization]: 'O', '2.5.4.6': 'C', '2.5.4.11': 'OU' };

/** A one-line rendering for messages, e.g. "O=meshid,CN=root"; never used for decisions. */
export function nameText(name: Asn1): string {
  const parts: string[] = [];
  for (const rdn of childrenOf(name, Tag.SEQUENCE, 'Name')) {
    for (const atv of childrenOf(rdn, Tag.SET, 'RDN')) {
      const [type, value] = childrenOf(atv, Tag.SEQUENCE, 'AttributeTypeAndValue');
      const oid = readOid(type, 'attribute type');
      const raw = typeof value?.value === 'string' ? value.value : '';
      const text = value?.type === Tag.UTF8 ? utf8Text(raw) : raw;
      parts.push(`${SHORT[oid] ?? oid}=${text}`);
    }
  }
  return parts.join(',');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** forge keeps UTF8String contents as a binary string; invalid UTF-8 is a malformed name, not a crash. */
function utf8Text(raw: string): string {
  try {
    return UTF8.decode(Buffer.from(raw, 'binary'));
  } catch {
    throw new MeshidError('der_malformed', 'a UTF8String in a name is not valid UTF-8');
  }
}

export function isEmptyName(name: Asn1): boolean {
  return Array.isArray(name.value) && name.value.length === 0;
}

/** String types a directory string can be in (X.520 DirectoryString, plus IA5 as some CAs use). */
const BMP_STRING = 30;

/**
 * Every attribute of a DER Name, in order, as (OID, text), read structurally: for decisions (a
 * partner CA mapping by subject CN or O), never from nameText's rendering. Values in a string type
 * meshid does not read (UniversalString, ...) are left out, so they can match nothing.
 */
export function nameAttributes(nameDer: Uint8Array): NameAttribute[] {
  const name = decodeDer(nameDer, 'Name');
  const out: NameAttribute[] = [];
  for (const rdn of childrenOf(name, Tag.SEQUENCE, 'Name')) {
    for (const atv of childrenOf(rdn, Tag.SET, 'RDN')) {
      const [type, value] = childrenOf(atv, Tag.SEQUENCE, 'AttributeTypeAndValue');
      const oid = readOid(type, 'attribute type');
      const raw = typeof value?.value === 'string' ? value.value : undefined;
      if (raw === undefined) continue;
      let text: string | undefined;
      if (value?.type === Tag.UTF8) text = utf8Text(raw);
      else if (value?.type === Tag.PRINTABLESTRING || value?.type === Tag.IA5STRING) text = raw;
      else if (value?.type === BMP_STRING && raw.length % 2 === 0) text = Buffer.from(raw, 'binary').swap16().toString('utf16le');
      if (text !== undefined) out.push({ oid, value: text });
    }
  }
  return out;
}

/** X.501 Names: built one attribute per RDN, compared as DER (exact-match chaining). */
import { MeshidError } from '../lib/errors.js';
import { type Asn1, childrenOf, der, readOid, Tag } from './der.js';
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

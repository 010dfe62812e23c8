/**
 * X.509 certificates: parsed structurally into what path validation and the SPIFFE rules need,
 * and built from a spec for issuance (roots, intermediates, SVIDs, serving certificates).
 */
import crypto, { type KeyObject } from 'node:crypto';
import { MeshidError, withContext } from '../lib/errors.js';
import { type Asn1, bytesOf, childrenOf, decodeDer, der, elementBytes, encodeDer, readBits, readOid, readSmallInt, readTime, sequenceOf, Tag, TagClass } from './der.js';
import {
  type BasicConstraints,
  type Extension,
  findExtension,
  type GeneralName,
  type KeyUsage,
  parseAuthorityKeyId,
  parseBasicConstraints,
  parseExtensions,
  parseExtKeyUsage,
  parseGeneralNames,
  parseKeyUsage,
  parseSubjectKeyId,
} from './extensions.js';
import { algorithmIdentifier, importSpki, sign, signatureSchemeFor, verifySignature } from './keys.js';
import { isEmptyName, nameText } from './name.js';
import { OID } from './oids.js';
import { decodePemOf, encodePem } from './pem.js';

export interface Certificate {
  readonly der: Buffer;
  readonly version: number;
  /** Serial number as lowercase hex of its DER contents. */
  readonly serial: string;
  readonly signatureAlgorithm: string;
  /** The signature algorithm named inside the signed part; must equal signatureAlgorithm. */
  readonly tbsSignatureAlgorithm: string;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly issuerText: string;
  readonly subjectText: string;
  readonly subjectEmpty: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Asn1;
  readonly extensions: readonly Extension[];
  readonly basicConstraints?: BasicConstraints;
  readonly keyUsage?: ReadonlySet<KeyUsage>;
  readonly extKeyUsage?: readonly string[];
  readonly sans: readonly GeneralName[];
  readonly sanCritical: boolean;
  readonly subjectKeyId?: Buffer;
  readonly authorityKeyId?: Buffer;
  /** The subject public key, imported on first use. */
  publicKey(): KeyObject;
  /** Whether issuerKey signed this certificate (under the algorithm it names). */
  verifySignedBy(issuerKey: KeyObject): boolean;
}

export function parseCertificate(certDer: Uint8Array): Certificate {
  const bytes = Buffer.from(certDer);
  const what = 'certificate';
  const top = childrenOf(decodeDer(bytes, what), Tag.SEQUENCE, what);
  if (top.length !== 3) throw malformed('expected tbsCertificate, signatureAlgorithm and signature');
  const [tbs, algNode, sigNode] = top as [Asn1, Asn1, Asn1];
  const fields = childrenOf(tbs, Tag.SEQUENCE, 'tbsCertificate');
  let i = 0;
  let version = 1;
  if (fields[0]?.tagClass === TagClass.CONTEXT_SPECIFIC && fields[0].type === 0) {
    version = readSmallInt(childrenOf(fields[0], 0, 'version', TagClass.CONTEXT_SPECIFIC)[0], 'version') + 1;
    i++;
  }
  const serialNode = fields[i++];
  const tbsAlg = fields[i++];
  const issuer = fields[i++];
  const validity = childrenOf(fields[i++], Tag.SEQUENCE, 'validity');
  const subject = fields[i++];
  const spki = fields[i++];
  if (!serialNode || !tbsAlg || !issuer || !subject || !spki || validity.length !== 2) throw malformed('missing fields');
  childrenOf(issuer, Tag.SEQUENCE, 'issuer');
  childrenOf(subject, Tag.SEQUENCE, 'subject');
  childrenOf(spki, Tag.SEQUENCE, 'subjectPublicKeyInfo');
  let extensions: Extension[] = [];
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.tagClass !== TagClass.CONTEXT_SPECIFIC) throw malformed('unexpected field after subjectPublicKeyInfo');
    if (f.type === 3) {
      if (version !== 3) throw malformed('extensions in a certificate that is not v3');
      extensions = parseExtensions(childrenOf(f, 3, 'extensions', TagClass.CONTEXT_SPECIFIC)[0]!, what);
    } else if (f.type !== 1 && f.type !== 2) {
      throw malformed(`unexpected field [${f.type}]`);
    }
  }
  const get = (oid: string) => findExtension(extensions, oid);
  const bc = get(OID.basicConstraints);
  const ku = get(OID.keyUsage);
  const eku = get(OID.extKeyUsage);
  const san = get(OID.subjectAltName);
  const ski = get(OID.subjectKeyIdentifier);
  const aki = get(OID.authorityKeyIdentifier);
  const signatureAlgorithm = readOid(childrenOf(algNode, Tag.SEQUENCE, 'signatureAlgorithm')[0], 'signatureAlgorithm');
  const signature = readBits(sigNode, 'signature');
  const serialBytes = bytesOf(serialNode);
  let key: KeyObject | undefined;
  let tbsDer: Buffer | undefined;
  return {
    der: bytes,
    version,
    serial: serialBytes.toString('hex'),
    signatureAlgorithm,
    tbsSignatureAlgorithm: readOid(childrenOf(tbsAlg, Tag.SEQUENCE, 'signature')[0], 'signature'),
    issuer: encodeDer(issuer),
    subject: encodeDer(subject),
    issuerText: nameText(issuer),
    subjectText: nameText(subject),
    subjectEmpty: isEmptyName(subject),
    notBefore: readTime(validity[0], 'notBefore'),
    notAfter: readTime(validity[1], 'notAfter'),
    spki,
    extensions,
    ...(bc ? { basicConstraints: parseBasicConstraints(bc.value, what) } : {}),
    ...(ku ? { keyUsage: parseKeyUsage(ku.value, what) } : {}),
    ...(eku ? { extKeyUsage: parseExtKeyUsage(eku.value, what) } : {}),
    sans: san ? parseGeneralNames(san.value, what) : [],
    sanCritical: san?.critical ?? false,
    ...(ski ? { subjectKeyId: parseSubjectKeyId(ski.value, what) } : {}),
    ...(aki ? optional('authorityKeyId', parseAuthorityKeyId(aki.value, what)) : {}),
    publicKey() {
      key ??= importSpki(spki, what);
      return key;
    },
    verifySignedBy(issuerKey: KeyObject) {
      if (signature.unusedBits !== 0) return false;
      tbsDer ??= elementBytes(bytes, 0, 'tbsCertificate');
      try {
        return verifySignature(signatureAlgorithm, tbsDer, issuerKey, signature.bytes);
      } catch {
        return false;
      }
    },
  };
}

function optional<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

function malformed(detail: string): MeshidError {
  return new MeshidError('certificate_malformed', `malformed certificate: ${detail}`);
}

/** Parses every CERTIFICATE block of a PEM text, in order. */
export function parseCertificatesPem(pem: string, what: string): Certificate[] {
  return decodePemOf(pem, 'CERTIFICATE', what).map((d, idx) => {
    try {
      return parseCertificate(d);
    } catch (e) {
      if (e instanceof MeshidError) throw withContext(e, `${what}, certificate ${idx + 1}`);
      throw e;
    }
  });
}

export function certificatesToPem(certs: readonly { der: Uint8Array }[]): string {
  return certs.map((c) => encodePem('CERTIFICATE', c.der)).join('');
}

// ---- building --------------------------------------------------------------------------------

export interface CertificateSpec {
  /** Positive serial number, big-endian. */
  readonly serial: Uint8Array;
  readonly issuer: Asn1;
  readonly subject: Asn1;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Asn1;
  /** Extension nodes (see extensionNode in extensions.ts). */
  readonly extensions: readonly Asn1[];
}

/** Encodes and signs a v3 certificate with the issuer's key. */
export function buildCertificate(spec: CertificateSpec, issuerKey: KeyObject): Buffer {
  const scheme = signatureSchemeFor(issuerKey);
  const alg = algorithmIdentifier(scheme);
  const fields: Asn1[] = [
    der.ctx(0, [der.small(2)]),
    der.uint(spec.serial),
    alg,
    spec.issuer,
    der.seq([der.time(spec.notBefore), der.time(spec.notAfter)]),
    spec.subject,
    spec.spki,
  ];
  if (spec.extensions.length > 0) fields.push(der.ctx(3, [der.seq([...spec.extensions])]));
  const tbs = encodeDer(der.seq(fields));
  const signature = sign(scheme, tbs, issuerKey);
  return sequenceOf([tbs, encodeDer(alg), encodeDer(der.bits(signature))]);
}

/** A random positive serial of 128 bits (RFC 5280 allows 20 octets; CAs use at least 64 bits). */
export function randomSerial(): Buffer {
  // Drawn from a pool: one randomBytes call per 256 serials instead of one per certificate.
  if (serialPoolAt + 16 > serialPool.length) {
    serialPool = crypto.randomBytes(4096);
    serialPoolAt = 0;
  }
  const b = Buffer.from(serialPool.subarray(serialPoolAt, (serialPoolAt += 16)));
  b[0] = (b[0]! & 0x3f) | 0x40; // positive, and never shorter than 16 bytes after DER trimming
  return b;
}

let serialPool = Buffer.alloc(0);
let serialPoolAt = 0;

/**
 * X.509 v2 CRLs (RFC 5280 section 5), built and parsed. Pure: node-forge's asn1 (through der.ts)
 * encodes, node:crypto signs and verifies. Each CRL carries the authorityKeyIdentifier and a
 * cRLNumber (both required of conforming CAs), thisUpdate and nextUpdate, and per entry the
 * revocation date and, unless unspecified, the reason code.
 */
import type { KeyObject } from 'node:crypto';
import type { Certificate } from '../identity/certificate.js';
import { type Asn1, bytesOf, childrenOf, decodeDer, der, elementBytes, encodeDer, readBits, readOid, readTime, Tag, TagClass } from '../identity/der.js';
import { authorityKeyIdValue, extensionNode, parseExtensions } from '../identity/extensions.js';
import forge from '../identity/forge-asn1.js';
import { algorithmIdentifier, keyIdentifier, sign, signatureSchemeFor, verifySignature } from '../identity/keys.js';
import { encodePem, decodePemOf } from '../identity/pem.js';
import { MeshidError } from '../lib/errors.js';
import { REVOCATION_REASONS, type RevocationReason } from './registry.js';

const CRL_NUMBER_OID = '2.5.29.20';
const REASON_CODE_OID = '2.5.29.21';
const AKI_OID = '2.5.29.35';

export interface CrlEntry {
  /** Lowercase hex. */
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: RevocationReason;
}

export interface CrlSpec {
  readonly issuer: Certificate;
  readonly issuerKey: KeyObject;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly crlNumber: number;
  readonly entries: readonly CrlEntry[];
}

const enumerated = (n: number): Asn1 => forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.ENUMERATED, false, String.fromCharCode(n));

function wholeSecond(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

export function buildCrl(spec: CrlSpec): Buffer {
  const scheme = signatureSchemeFor(spec.issuerKey);
  const alg = algorithmIdentifier(scheme);
  const fields: Asn1[] = [
    der.small(1), // v2
    alg,
    decodeDer(spec.issuer.subject, 'issuer name'),
    der.time(wholeSecond(spec.thisUpdate)),
    der.time(wholeSecond(spec.nextUpdate)),
  ];
  if (spec.entries.length > 0) {
    fields.push(
      der.seq(
        spec.entries.map((e) => {
          const entry: Asn1[] = [der.uint(Buffer.from(e.serial, 'hex')), der.time(wholeSecond(e.revokedAt))];
          const code = REVOCATION_REASONS[e.reason];
          // RFC 5280 5.3.1: the reason code extension SHOULD be absent rather than unspecified.
          if (code !== 0) entry.push(der.seq([extensionNode(REASON_CODE_OID, false, enumerated(code))]));
          return der.seq(entry);
        }),
      ),
    );
  }
  const keyId = spec.issuer.subjectKeyId ?? keyIdentifier(spec.issuer.spki);
  fields.push(
    der.ctx(0, [
      der.seq([
        extensionNode(AKI_OID, false, authorityKeyIdValue(keyId)),
        extensionNode(CRL_NUMBER_OID, false, der.small(spec.crlNumber)),
      ]),
    ]),
  );
  const tbs = der.seq(fields);
  return encodeDer(der.seq([tbs, alg, der.bits(sign(scheme, encodeDer(tbs), spec.issuerKey))]));
}

/** Serials compare without leading zero bytes (DER adds one to a serial whose top bit is set). */
export function serialKey(hex: string): string {
  let i = 0;
  while (i + 2 < hex.length && hex.startsWith('00', i)) i += 2;
  return hex.slice(i).toLowerCase();
}

export const crlPem = (crlDer: Uint8Array): string => encodePem('X509 CRL', crlDer);

export interface ParsedCrl {
  readonly der: Buffer;
  readonly issuer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  readonly crlNumber?: number;
  /** Revoked serials (lowercase hex) and when. */
  readonly revoked: ReadonlyMap<string, Date>;
  verifySignedBy(key: KeyObject): boolean;
}

function crlError(detail: string): MeshidError {
  return new MeshidError('crl_invalid', `CRL: ${detail}`);
}

export function parseCrl(crlDer: Uint8Array): ParsedCrl {
  const bytes = Buffer.from(crlDer);
  let top: Asn1[];
  try {
    top = childrenOf(decodeDer(bytes, 'CRL'), Tag.SEQUENCE, 'CRL');
  } catch (e) {
    throw crlError((e as Error).message);
  }
  if (top.length !== 3) throw crlError('expected tbsCertList, signatureAlgorithm and signature');
  const [tbs, algNode, sigNode] = top as [Asn1, Asn1, Asn1];
  const fields = childrenOf(tbs, Tag.SEQUENCE, 'tbsCertList');
  let i = 0;
  if (fields[0]?.type === Tag.INTEGER && fields[0].tagClass === TagClass.UNIVERSAL) i++;
  i++; // signature algorithm
  const issuer = fields[i++];
  if (!issuer) throw crlError('no issuer');
  const thisUpdate = readTime(fields[i++], 'thisUpdate');
  let nextUpdate: Date | undefined;
  const f = fields[i];
  if (f && f.tagClass === TagClass.UNIVERSAL && (f.type === Tag.UTCTIME || f.type === Tag.GENERALIZEDTIME)) {
    nextUpdate = readTime(f, 'nextUpdate');
    i++;
  }
  const revoked = new Map<string, Date>();
  const list = fields[i];
  if (list && list.tagClass === TagClass.UNIVERSAL && list.type === Tag.SEQUENCE) {
    for (const entry of childrenOf(list, Tag.SEQUENCE, 'revokedCertificates')) {
      const [serial, date] = childrenOf(entry, Tag.SEQUENCE, 'revoked certificate');
      if (!serial) throw crlError('an entry without a serial');
      revoked.set(bytesOf(serial).toString('hex'), readTime(date, 'revocationDate'));
    }
    i++;
  }
  let crlNumber: number | undefined;
  const extNode = fields[i];
  if (extNode && extNode.tagClass === TagClass.CONTEXT_SPECIFIC && extNode.type === 0) {
    for (const ext of parseExtensions(childrenOf(extNode, 0, 'crlExtensions', TagClass.CONTEXT_SPECIFIC)[0]!, 'CRL')) {
      if (ext.oid !== CRL_NUMBER_OID) continue;
      const b = bytesOf(decodeDer(ext.value, 'cRLNumber'));
      if (b.length >= 1 && b.length <= 6) crlNumber = b.readUIntBE(0, b.length);
    }
  }
  const signatureAlgorithm = readOid(childrenOf(algNode, Tag.SEQUENCE, 'signatureAlgorithm')[0], 'signatureAlgorithm');
  const signature = readBits(sigNode, 'signature');
  return {
    der: bytes,
    issuer: encodeDer(issuer),
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    ...(crlNumber !== undefined ? { crlNumber } : {}),
    revoked,
    verifySignedBy(key) {
      try {
        return signature.unusedBits === 0 && verifySignature(signatureAlgorithm, elementBytes(bytes, 0, 'tbsCertList'), key, signature.bytes);
      } catch {
        return false;
      }
    },
  };
}

export function parseCrlPem(pem: string, what: string): ParsedCrl {
  const [first] = decodePemOf(pem, 'X509 CRL', what);
  if (!first) throw crlError(`${what} holds no X509 CRL block`);
  return parseCrl(first);
}

/** How far in the future a thisUpdate may be before a CRL is refused (clock skew between CA and agent). */
export const CRL_MAX_SKEW_MS = 5 * 60_000;

/**
 * Why crl cannot be used at now, or undefined when it can: signed by one of issuers (a CA
 * certificate, with cRLSign when it has a key usage, whose subject is the CRL's issuer), thisUpdate
 * not in the future beyond the skew, a nextUpdate after thisUpdate that has not passed.
 */
export function crlProblem(crl: ParsedCrl, issuers: readonly Certificate[], now: number, skewMs = CRL_MAX_SKEW_MS): string | undefined {
  const named = issuers.filter((c) => c.subject.equals(crl.issuer));
  if (named.length === 0) return 'its issuer is not in the trust bundle or the chain above this agent\'s SVID';
  const signer = named.find((c) => {
    try {
      return crl.verifySignedBy(c.publicKey());
    } catch {
      return false;
    }
  });
  if (!signer) return `its signature does not verify with the key of ${named[0]!.subjectText}`;
  if (signer.basicConstraints?.ca !== true) return `its signer ${signer.subjectText} is not a CA certificate`;
  if (signer.keyUsage && !signer.keyUsage.has('cRLSign')) return `its signer ${signer.subjectText} lacks the cRLSign key usage`;
  if (crl.thisUpdate.getTime() > now + skewMs) return `its thisUpdate ${crl.thisUpdate.toISOString()} is in the future`;
  if (!crl.nextUpdate) return 'it has no nextUpdate';
  if (crl.nextUpdate.getTime() <= crl.thisUpdate.getTime()) return 'its nextUpdate is not after its thisUpdate';
  if (crl.nextUpdate.getTime() <= now) return `it expired at its nextUpdate ${crl.nextUpdate.toISOString()}`;
  return undefined;
}

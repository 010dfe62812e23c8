/**
 * A test PKI that really signs: roots, intermediates and leaves built with meshid's own
 * certificate builder, with overrides for every field so tests can craft invalid certificates.
 */
import type { KeyObject } from 'node:crypto';
import { buildCertificate, parseCertificate, randomSerial, type Certificate } from '../../src/identity/certificate.js';
import { type Asn1, childrenOf, decodeDer, der, encodeDer, Tag } from '../../src/identity/der.js';
import {
  authorityKeyIdValue,
  basicConstraintsValue,
  type BasicConstraints,
  extensionNode,
  extKeyUsageValue,
  type GeneralName,
  generalNamesValue,
  type KeyUsage,
  keyUsageValue,
  subjectKeyIdValue,
} from '../../src/identity/extensions.js';
import {
  algorithmIdentifier,
  generateKeyPairSync,
  keyIdentifier,
  type KeyAlgorithm,
  type KeyPair,
  sign,
  signatureSchemeFor,
  spkiNode,
} from '../../src/identity/keys.js';
import { commonNameAndOrg, type NameAttribute, nameNode } from '../../src/identity/name.js';
import { OID } from '../../src/identity/oids.js';
import { encodePem } from '../../src/identity/pem.js';

export interface Issued {
  readonly cert: Certificate;
  readonly der: Buffer;
  readonly pem: string;
  readonly key: KeyPair;
  readonly name: Asn1;
}

export interface CertOptions {
  /** Defaults to 'ec-p256'. */
  keyAlgorithm?: KeyAlgorithm;
  key?: KeyPair;
  commonName?: string;
  /** The whole subject, attribute by attribute (replaces commonName). */
  subject?: NameAttribute[];
  /** Empty subject when true (leaves default to empty). */
  emptySubject?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /** Replaces basicConstraints; null leaves it out. */
  basicConstraints?: (BasicConstraints & { critical?: boolean }) | null;
  /** Replaces keyUsage; null leaves it out. */
  keyUsage?: KeyUsage[] | null;
  extKeyUsage?: string[] | null;
  sans?: GeneralName[];
  sanCritical?: boolean;
  /** Extra raw extension nodes. */
  extraExtensions?: Asn1[];
  /** Sign with this key instead of the issuer's (forged signature). */
  signWith?: KeyObject;
  /** Leave out the authorityKeyIdentifier, so path building must match on names alone. */
  omitAuthorityKeyId?: boolean;
}

const HOUR = 3_600_000;

function build(subjectName: Asn1, issuer: Issued | undefined, key: KeyPair, o: CertOptions, defaults: {
  bc: BasicConstraints | null;
  ku: KeyUsage[] | null;
  eku: string[] | null;
  sans: GeneralName[];
  sanCritical: boolean;
}): Issued {
  const now = Date.now();
  const spki = spkiNode(key.publicKey);
  const exts: Asn1[] = [];
  const bc = o.basicConstraints === undefined ? defaults.bc : o.basicConstraints;
  if (bc) exts.push(extensionNode(OID.basicConstraints, (bc as { critical?: boolean }).critical ?? true, basicConstraintsValue(bc)));
  const ku = o.keyUsage === undefined ? defaults.ku : o.keyUsage;
  if (ku) exts.push(extensionNode(OID.keyUsage, true, keyUsageValue(ku)));
  const eku = o.extKeyUsage === undefined ? defaults.eku : o.extKeyUsage;
  if (eku) exts.push(extensionNode(OID.extKeyUsage, false, extKeyUsageValue(eku)));
  exts.push(extensionNode(OID.subjectKeyIdentifier, false, subjectKeyIdValue(keyIdentifier(spki))));
  if (issuer && !o.omitAuthorityKeyId) exts.push(extensionNode(OID.authorityKeyIdentifier, false, authorityKeyIdValue(keyIdentifier(issuer.cert.spki))));
  const sans = o.sans ?? defaults.sans;
  if (sans.length > 0) exts.push(extensionNode(OID.subjectAltName, o.sanCritical ?? defaults.sanCritical, generalNamesValue(sans)));
  exts.push(...(o.extraExtensions ?? []));
  const certDer = buildCertificate(
    {
      serial: randomSerial(),
      issuer: issuer?.name ?? subjectName,
      subject: subjectName,
      notBefore: o.notBefore ?? new Date(now - 60_000),
      notAfter: o.notAfter ?? new Date(now + 24 * HOUR),
      spki,
      extensions: exts,
    },
    o.signWith ?? issuer?.key.privateKey ?? key.privateKey,
  );
  return { cert: parseCertificate(certDer), der: certDer, pem: encodePem('CERTIFICATE', certDer), key, name: subjectName };
}

export function makeRoot(trustDomain = 'example.org', o: CertOptions = {}): Issued {
  const key = o.key ?? generateKeyPairSync(o.keyAlgorithm ?? 'ec-p256');
  const name = nameNode(commonNameAndOrg(o.commonName ?? `test root ${trustDomain}`, trustDomain));
  return build(name, undefined, key, o, {
    bc: { ca: true },
    ku: ['keyCertSign', 'cRLSign', 'digitalSignature'],
    eku: null,
    sans: [{ type: 'uri', value: `spiffe://${trustDomain}` }],
    sanCritical: false,
  });
}

export function makeIntermediate(issuer: Issued, trustDomain = 'example.org', o: CertOptions = {}): Issued {
  const key = o.key ?? generateKeyPairSync(o.keyAlgorithm ?? 'ec-p256');
  const name = nameNode(commonNameAndOrg(o.commonName ?? `test intermediate ${trustDomain}`, trustDomain));
  return build(name, issuer, key, o, {
    bc: { ca: true, pathLen: 0 },
    ku: ['keyCertSign', 'cRLSign', 'digitalSignature'],
    eku: null,
    sans: [{ type: 'uri', value: `spiffe://${trustDomain}` }],
    sanCritical: false,
  });
}

/** A leaf X.509-SVID for spiffeId (empty subject, critical SAN, as meshid's CA issues). */
export function makeLeaf(issuer: Issued, spiffeId = 'spiffe://example.org/ns/default/sa/app', o: CertOptions = {}): Issued {
  const key = o.key ?? generateKeyPairSync(o.keyAlgorithm ?? 'ec-p256');
  const emptySubject = o.emptySubject ?? (o.commonName === undefined && o.subject === undefined);
  const name = emptySubject ? nameNode([]) : nameNode(o.subject ?? commonNameAndOrg(o.commonName ?? 'leaf'));
  return build(name, issuer, key, o, {
    bc: { ca: false },
    ku: ['digitalSignature'],
    eku: [OID.serverAuth, OID.clientAuth],
    sans: [{ type: 'uri', value: spiffeId }],
    sanCritical: emptySubject,
  });
}

export function chainPem(...certs: Issued[]): string {
  return certs.map((c) => c.pem).join('');
}

/**
 * Re-signs a certificate with `signer` after `edit` rewrote its tbsCertificate fields (version,
 * serial, signature, issuer, validity, subject, spki, extensions...), for layouts the builder never
 * produces: v1 certificates, an inner signature algorithm that differs from the outer one.
 */
export function resign(cert: Issued, signer: KeyObject, edit: (fields: Asn1[]) => Asn1[]): Issued {
  const [tbs] = childrenOf(decodeDer(cert.der, 'certificate'), Tag.SEQUENCE, 'certificate');
  const fields = edit([...childrenOf(tbs, Tag.SEQUENCE, 'tbsCertificate')]);
  const scheme = signatureSchemeFor(signer);
  const tbsNode = der.seq(fields);
  const certDer = encodeDer(der.seq([tbsNode, algorithmIdentifier(scheme), der.bits(sign(scheme, encodeDer(tbsNode), signer))]));
  return { ...cert, cert: parseCertificate(certDer), der: certDer, pem: encodePem('CERTIFICATE', certDer) };
}

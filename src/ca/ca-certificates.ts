/**
 * The CA's own certificates: its self-signed root (first start without an operator intermediate)
 * and its TLS serving certificate. Pure: keys come from node:crypto, time from the caller.
 */
import { buildCertificate, type Certificate, parseCertificate, randomSerial } from '../identity/certificate.js';
import { certificatePem } from '../identity/pem.js';
import { type Asn1, decodeDer } from '../identity/der.js';
import {
  authorityKeyIdValue,
  basicConstraintsValue,
  extensionNode,
  extKeyUsageValue,
  type GeneralName,
  generalNamesValue,
  keyUsageValue,
  parseIp,
  subjectKeyIdValue,
} from '../identity/extensions.js';
import { generateKeyPairSync, keyIdentifier, type KeyPair, privateKeyPkcs8Pem, spkiNode } from '../identity/keys.js';
import { commonNameAndOrg, nameNode } from '../identity/name.js';
import { OID } from '../identity/oids.js';
import { trustDomainId } from '../identity/spiffe-id.js';
import { MeshidError } from '../lib/errors.js';
import { type Authority, CLOCK_SKEW_MS } from './authority.js';

const DAY_MS = 86_400_000;
/** Ten years, as Istio's self-signed root: rotating a root is an operation, not an event. */
export const ROOT_LIFETIME_MS = 3650 * DAY_MS;
/** The serving certificate lives a day and is renewed at half its life (see server.ts). */
export const SERVING_LIFETIME_MS = DAY_MS;

export function rootSubject(trustDomain: string): Asn1 {
  return nameNode(commonNameAndOrg(`meshid root CA ${trustDomain}`, 'meshid'));
}

/** A self-signed root: critical cA=true, keyCertSign+cRLSign, URI SAN spiffe://<td>. */
export function createRootCertificate(trustDomain: string, key: KeyPair, now: number): Certificate {
  const name = rootSubject(trustDomain);
  const spki = spkiNode(key.publicKey);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + ROOT_LIFETIME_MS),
      spki,
      extensions: [
        extensionNode(OID.basicConstraints, true, basicConstraintsValue({ ca: true })),
        extensionNode(OID.keyUsage, true, keyUsageValue(['keyCertSign', 'cRLSign'])),
        extensionNode(OID.subjectKeyIdentifier, false, subjectKeyIdValue(keyIdentifier(spki))),
        extensionNode(OID.subjectAltName, false, generalNamesValue([{ type: 'uri', value: trustDomainId(trustDomain) }])),
      ],
    },
    key.privateKey,
  );
  return parseCertificate(der);
}

export interface ServingCertificate {
  /** The serving leaf, then any intermediates (the client holds the root). */
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  readonly notAfter: Date;
}

const DNS_NAME_RE = /^(?=.{1,253}$)(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A --san value: an IP address or a DNS name; anything else names the problem. */
export function servingName(value: string): GeneralName {
  try {
    parseIp(value);
    return { type: 'ip', value };
  } catch {
    // All-numeric labels are a malformed address (010.0.0.1, 1.2.3), never a host name.
    if (/^[\d.]+$/.test(value)) throw new MeshidError('san_invalid', `--san ${JSON.stringify(value)} is not a valid IP address (no leading zeros, four octets)`);
    if (DNS_NAME_RE.test(value)) return { type: 'dns', value: value.toLowerCase() };
    throw new MeshidError('san_invalid', `--san ${JSON.stringify(value)} is neither a DNS name nor an IP address`);
  }
}

export const DEFAULT_SERVING_NAMES: readonly GeneralName[] = [
  { type: 'dns', value: 'localhost' },
  { type: 'ip', value: '127.0.0.1' },
  { type: 'ip', value: '::1' },
];

/** A fresh EC P-256 key and a serverAuth certificate for it, issued by the CA's issuing key. */
export function issueServingCertificate(authority: Authority, extraNames: readonly GeneralName[], now: number): ServingCertificate {
  const key = generateKeyPairSync('ec-p256');
  const issuer = authority.issuingCertificate;
  const { notBefore, notAfter } = authority.validity(now, SERVING_LIFETIME_MS);
  const names = dedupe([...DEFAULT_SERVING_NAMES, ...extraNames]);
  const spki = spkiNode(key.publicKey);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: decodeDer(issuer.subject, 'issuer name'),
      subject: nameNode(commonNameAndOrg(`meshid CA ${authority.trustDomain}`, 'meshid')),
      notBefore,
      notAfter,
      spki,
      extensions: [
        extensionNode(OID.basicConstraints, true, basicConstraintsValue({ ca: false })),
        extensionNode(OID.keyUsage, true, keyUsageValue(['digitalSignature'])),
        extensionNode(OID.extKeyUsage, false, extKeyUsageValue([OID.serverAuth])),
        extensionNode(OID.subjectKeyIdentifier, false, subjectKeyIdValue(keyIdentifier(spki))),
        extensionNode(OID.authorityKeyIdentifier, false, authorityKeyIdValue(issuer.subjectKeyId ?? keyIdentifier(issuer.spki))),
        extensionNode(OID.subjectAltName, false, generalNamesValue(names)),
      ],
    },
    authority.material.key,
  );
  const intermediates = authority.material.chain.slice(0, -1);
  return {
    certChainPem: [certificatePem(der), ...intermediates.map((c) => certificatePem(c.der))].join(''),
    privateKeyPem: privateKeyPkcs8Pem(key.privateKey),
    notAfter,
  };
}

function dedupe(names: readonly GeneralName[]): GeneralName[] {
  const seen = new Set<string>();
  return names.filter((n) => {
    const k = JSON.stringify(n);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

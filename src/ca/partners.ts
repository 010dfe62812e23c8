/**
 * Partner certificates: client certificates for external partners who call an API gateway, issued
 * offline by the operator from a partner's CSR (`meshid ca partner issue`). Pure: the command reads
 * the files and feeds the time.
 *
 * Layout: a partner named N gets the SPIFFE ID spiffe://<trust-domain>/partner/N, so policies name
 * it as a principal "<trust-domain>/partner/N". Workload IDs are spiffe://<td>/ns/<ns>/sa/<sa>, so
 * the two namespaces cannot collide. The certificate is for TLS clients only (EKU clientAuth), never
 * a CA, with the CA's usual key limits and exactly one URI SAN.
 */
import { randomSerial } from '../identity/certificate.js';
import { type Asn1, childrenOf, decodeDer, readOid, Tag } from '../identity/der.js';
import forge from '../identity/forge-asn1.js';
import { parseCsr } from '../identity/csr.js';
import { type NameAttribute, nameNode } from '../identity/name.js';
import { OID } from '../identity/oids.js';
import { certificatePem } from '../identity/pem.js';
import { type SpiffeId, spiffeIdFromParts } from '../identity/spiffe-id.js';
import { MeshidError } from '../lib/errors.js';
import type { Authority } from './authority.js';
import { LeafTemplate } from './leaf-template.js';
import { checkCsrKey, checkCsrRequest, checkCsrSignature } from './policy.js';

/** The path segment under which partner identities live. */
export const PARTNER_SEGMENT = 'partner';
/** Lowercase letters, digits and "-", starting with a letter: usable in a file name, a SPIFFE path and a metric label. */
const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;

export function checkPartnerName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new MeshidError('partner_name_invalid', `partner name ${JSON.stringify(name)} must be 1-63 lowercase letters, digits or "-", starting with a letter`);
  }
  return name;
}

export function partnerSpiffeId(trustDomain: string, name: string): SpiffeId {
  return spiffeIdFromParts(trustDomain, [PARTNER_SEGMENT, checkPartnerName(name)]);
}

/** The partner name of a SPIFFE ID in the partner namespace of trustDomain, if it is one. */
export function partnerNameOf(uri: string, trustDomain: string): string | undefined {
  const prefix = `spiffe://${trustDomain}/${PARTNER_SEGMENT}/`;
  if (!uri.startsWith(prefix)) return undefined;
  const name = uri.slice(prefix.length);
  return NAME_RE.test(name) ? name : undefined;
}

export interface PartnerIssueRequest {
  readonly csrPem: string;
  readonly name: string;
  readonly ttlMs: number;
  /** Whether the operator lets the partner's requested subject (O and CN only) into the certificate. */
  readonly allowSubject: boolean;
  readonly now: number;
}

export interface IssuedPartnerCertificate {
  readonly spiffeId: string;
  readonly der: Buffer;
  readonly certPem: string;
  /** The leaf and the intermediates above it (no root): what a client presents. */
  readonly chainPem: string;
  /** The root(s) a partner verifies the gateway's server certificate with. */
  readonly bundlePem: string;
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly cappedByIssuer: boolean;
}

const SUBJECT_ALLOWED: Record<string, string> = { [OID.organization]: 'O', [OID.commonName]: 'CN' };

/** The CSR's subject attributes; only O and CN are accepted, each at most once. */
export function csrSubject(csrDer: Buffer): NameAttribute[] {
  const info = childrenOf(childrenOf(decodeDer(csrDer, 'CSR'), Tag.SEQUENCE, 'CSR')[0], Tag.SEQUENCE, 'CertificationRequestInfo');
  const attrs: NameAttribute[] = [];
  for (const rdn of childrenOf(info[1], Tag.SEQUENCE, 'CSR subject')) {
    for (const atv of childrenOf(rdn, Tag.SET, 'CSR subject RDN')) {
      const [type, value] = childrenOf(atv, Tag.SEQUENCE, 'CSR subject attribute') as [Asn1 | undefined, Asn1 | undefined];
      const oid = readOid(type, 'CSR subject attribute type');
      const short = SUBJECT_ALLOWED[oid];
      if (!short) throw new MeshidError('csr_subject_unsupported', `the CSR subject has attribute ${oid}; a partner certificate carries O and CN only`);
      if (attrs.some((a) => a.oid === oid)) throw new MeshidError('csr_subject_unsupported', `the CSR subject names ${short} more than once`);
      const raw = typeof value?.value === 'string' ? value.value : '';
      const text = value?.type === Tag.UTF8 ? forge.util.decodeUtf8(raw) : raw;
      if (text.length === 0 || text.length > 64 || /[\u0000-\u001f]/.test(text)) {
        throw new MeshidError('csr_subject_unsupported', `the CSR subject ${short} must be 1-64 printable characters`);
      }
      attrs.push({ oid, value: text });
    }
  }
  // O before CN, whatever order the CSR used.
  return attrs.sort((a, b) => (a.oid === OID.organization ? -1 : b.oid === OID.organization ? 1 : 0));
}

export function subjectText(attrs: readonly NameAttribute[]): string {
  return attrs.map((a) => `${SUBJECT_ALLOWED[a.oid]}=${a.value}`).join(',');
}

/** Checks the CSR against the CA's rules and the partner's identity, and signs a client certificate. */
export function issuePartnerCertificate(authority: Authority, request: PartnerIssueRequest): IssuedPartnerCertificate {
  const id = partnerSpiffeId(authority.trustDomain, request.name);
  const csr = parseCsr(request.csrPem);
  checkCsrKey(csr);
  checkCsrRequest(csr, id);
  checkCsrSignature(csr);
  const subject = csrSubject(csr.der);
  if (subject.length > 0 && !request.allowSubject) {
    throw new MeshidError(
      'csr_subject_not_allowed',
      `the CSR asks for the subject ${subjectText(subject)}; pass --allow-subject to certify it, or ask the partner for a CSR with an empty subject`,
    );
  }
  const validity = authority.validity(request.now, request.ttlMs);
  const serial = randomSerial();
  const issuer = authority.issuingCertificate;
  const leafDer = new LeafTemplate(issuer, authority.material.key).build({
    serial,
    spki: csr.spki,
    keyKind: csr.keyInfo.kind === 'rsa' ? 'rsa' : 'ec',
    spiffeId: id.uri,
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    subject: subject.length > 0 ? nameNode(subject) : undefined,
    clientOnly: true,
  });
  const chain = authority.material.chain;
  const certPem = certificatePem(leafDer);
  return {
    spiffeId: id.uri,
    der: leafDer,
    certPem,
    chainPem: certPem + chain.slice(0, -1).map((c) => certificatePem(c.der)).join(''),
    bundlePem: certificatePem(authority.root.der),
    serial: serial.toString('hex'),
    subject: subjectText(subject),
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    cappedByIssuer: validity.capped,
  };
}

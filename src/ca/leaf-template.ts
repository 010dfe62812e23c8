/**
 * Builds workload certificates (X.509-SVIDs) for one issuer. Everything that is the same for every
 * leaf of that issuer (its Name, the AlgorithmIdentifier, basicConstraints, keyUsage, EKU, AKI) is
 * built once as ASN.1 nodes and reused; per leaf only the serial, validity, key, SKI and SAN are
 * new. Pure: node:crypto for signing, node-forge's asn1 (through der.ts) for encoding.
 */
import type { KeyObject } from 'node:crypto';
import { buildCertificate, type Certificate } from '../identity/certificate.js';
import { type Asn1, decodeDer } from '../identity/der.js';
import {
  authorityKeyIdValue,
  basicConstraintsValue,
  extensionNode,
  extKeyUsageValue,
  generalNamesValue,
  keyUsageValue,
  subjectKeyIdValue,
} from '../identity/extensions.js';
import { keyIdentifier, signatureSchemeFor } from '../identity/keys.js';
import { nameNode } from '../identity/name.js';
import { OID } from '../identity/oids.js';

export interface LeafSpec {
  readonly serial: Uint8Array;
  /** The SubjectPublicKeyInfo node from the CSR, embedded as is. */
  readonly spki: Asn1;
  readonly keyKind: 'ec' | 'rsa';
  /** The one URI SAN: the authenticated SPIFFE ID. */
  readonly spiffeId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** A subject Name node (partner certificates); workload SVIDs have none. */
  readonly subject?: Asn1 | undefined;
  /** Client authentication only (partner certificates); workload SVIDs are server and client. */
  readonly clientOnly?: boolean | undefined;
}

export class LeafTemplate {
  private readonly issuerName: Asn1;
  private readonly basicConstraints = extensionNode(OID.basicConstraints, true, basicConstraintsValue({ ca: false }));
  private readonly keyUsageEc = extensionNode(OID.keyUsage, true, keyUsageValue(['digitalSignature']));
  // RSA keys can also be used for key transport (TLS 1.2 RSA key exchange).
  private readonly keyUsageRsa = extensionNode(OID.keyUsage, true, keyUsageValue(['digitalSignature', 'keyEncipherment']));
  private readonly extKeyUsage = extensionNode(OID.extKeyUsage, false, extKeyUsageValue([OID.serverAuth, OID.clientAuth]));
  private readonly extKeyUsageClient = extensionNode(OID.extKeyUsage, false, extKeyUsageValue([OID.clientAuth]));
  private readonly authorityKeyId: Asn1;
  private readonly emptySubject = nameNode([]);

  constructor(
    issuer: Certificate,
    private readonly issuerKey: KeyObject,
  ) {
    signatureSchemeFor(issuerKey); // fail at construction, not at the first request, on an unusable key
    this.issuerName = decodeDer(issuer.subject, 'issuer name');
    this.authorityKeyId = extensionNode(OID.authorityKeyIdentifier, false, authorityKeyIdValue(issuer.subjectKeyId ?? keyIdentifier(issuer.spki)));
  }

  /** DER of a signed leaf; with an empty subject the SAN is critical (RFC 5280 4.2.1.6). */
  build(spec: LeafSpec): Buffer {
    return buildCertificate(
      {
        serial: spec.serial,
        issuer: this.issuerName,
        subject: spec.subject ?? this.emptySubject,
        notBefore: spec.notBefore,
        notAfter: spec.notAfter,
        spki: spec.spki,
        extensions: [
          this.basicConstraints,
          spec.keyKind === 'rsa' ? this.keyUsageRsa : this.keyUsageEc,
          spec.clientOnly === true ? this.extKeyUsageClient : this.extKeyUsage,
          extensionNode(OID.subjectKeyIdentifier, false, subjectKeyIdValue(keyIdentifier(spec.spki))),
          this.authorityKeyId,
          extensionNode(OID.subjectAltName, spec.subject === undefined, generalNamesValue([{ type: 'uri', value: spec.spiffeId }])),
        ],
      },
      this.issuerKey,
    );
  }
}

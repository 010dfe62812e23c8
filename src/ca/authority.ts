/**
 * The issuance core: from a PEM CSR and the identity the caller proved, a signed X.509-SVID and
 * the chain to return. Pure (no grpc, fs or timers): the server feeds it the time.
 */
import type { KeyObject } from 'node:crypto';
import { type Certificate, randomSerial } from '../identity/certificate.js';
import { certificatePem } from '../identity/pem.js';
import { parseCsr } from '../identity/csr.js';
import type { SpiffeId } from '../identity/spiffe-id.js';
import { MeshidError } from '../lib/errors.js';
import { LeafTemplate } from './leaf-template.js';
import { checkCsrKey, checkCsrRequest, checkCsrSignature, type ResolvedTtl, resolveTtl, type TtlPolicy } from './policy.js';

/**
 * NotBefore is back-dated by one minute so that a peer whose clock runs a little behind accepts a
 * certificate issued a moment ago: wider than SPIRE's 10 s (NTP-synced hosts drift by seconds, a
 * resumed VM by more), narrower than Istio's 2 min, since a certificate should not claim validity
 * long before it existed.
 */
export const CLOCK_SKEW_MS = 60_000;

/** The key that signs and its certificate chain: the issuing certificate first, the root last. */
export interface SigningMaterial {
  readonly key: KeyObject;
  readonly chain: readonly Certificate[];
}

export interface IssueRequest {
  readonly csrPem: string;
  readonly identity: SpiffeId;
  /** validity_duration from the request; 0 or absent means the default TTL. */
  readonly requestedTtlSeconds?: number | undefined;
  /** Issuance time, epoch ms. */
  readonly now: number;
}

export interface IssuedSvid {
  readonly der: Buffer;
  /** Leaf first, root last, one PEM per element. */
  readonly chainPem: string[];
  /** Lowercase hex of the serial number's DER contents. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly ttl: ResolvedTtl;
  /** Whether NotAfter was cut to the issuer's NotAfter. */
  readonly cappedByIssuer: boolean;
}

export class Authority {
  readonly issuingCertificate: Certificate;
  readonly root: Certificate;
  /** PEMs of the issuing certificate up to the root, appended after each leaf. */
  private readonly chainTail: readonly string[];
  private readonly template: LeafTemplate;
  /** A leaf may not start before, nor end after, any certificate above it. */
  private readonly earliestStart: number;
  private readonly latestEnd: number;

  constructor(
    readonly trustDomain: string,
    readonly material: SigningMaterial,
    private readonly ttlPolicy: TtlPolicy,
  ) {
    const [issuing] = material.chain;
    if (!issuing) throw new MeshidError('ca_chain_empty', 'the CA has no certificate');
    this.issuingCertificate = issuing;
    this.root = material.chain[material.chain.length - 1]!;
    this.chainTail = material.chain.map((c) => certificatePem(c.der));
    this.template = new LeafTemplate(issuing, material.key);
    this.earliestStart = Math.max(...material.chain.map((c) => c.notBefore.getTime()));
    this.latestEnd = Math.min(...material.chain.map((c) => c.notAfter.getTime()));
  }

  /** The CA's chain up to the root, the earliest NotAfter on it. */
  get expiresAt(): Date {
    return new Date(this.latestEnd);
  }

  issue(request: IssueRequest): IssuedSvid {
    const { identity, now } = request;
    if (identity.trustDomain !== this.trustDomain) {
      throw new MeshidError('identity_foreign_trust_domain', `identity ${identity.uri} is not in this CA's trust domain ${this.trustDomain}`);
    }
    const ttl = resolveTtl(request.requestedTtlSeconds, this.ttlPolicy);
    const csr = parseCsr(request.csrPem);
    checkCsrKey(csr);
    checkCsrRequest(csr, identity);
    checkCsrSignature(csr);
    const validity = this.validity(now, ttl.ttlMs);
    const serial = randomSerial();
    const der = this.template.build({
      serial,
      spki: csr.spki,
      keyKind: csr.keyInfo.kind === 'rsa' ? 'rsa' : 'ec',
      spiffeId: identity.uri,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
    });
    return {
      der,
      chainPem: [certificatePem(der), ...this.chainTail],
      serial: serial.toString('hex'),
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      ttl,
      cappedByIssuer: validity.capped,
    };
  }

  /** Validity of a certificate issued at now for ttlMs, in whole seconds as DER encodes it. */
  validity(now: number, ttlMs: number): { notBefore: Date; notAfter: Date; capped: boolean } {
    if (now >= this.latestEnd) {
      throw new MeshidError('ca_expired', `the CA certificate chain expired at ${this.expiresAt.toISOString()}`);
    }
    if (now < this.earliestStart) {
      throw new MeshidError('ca_not_yet_valid', `the CA certificate chain is not valid before ${new Date(this.earliestStart).toISOString()}`);
    }
    const notBefore = Math.max(now - CLOCK_SKEW_MS, this.earliestStart);
    const wanted = now + ttlMs;
    const notAfter = Math.min(wanted, this.latestEnd);
    // Both round down: the issuer's own dates are whole seconds, so NotBefore stays within them.
    return { notBefore: wholeSecond(notBefore), notAfter: wholeSecond(notAfter), capped: wanted > this.latestEnd };
  }
}

function wholeSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

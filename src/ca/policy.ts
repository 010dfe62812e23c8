/**
 * What the CA agrees to sign. Pure: it looks at a parsed CSR and the identity the caller proved,
 * and throws a MeshidError naming the problem. The issued certificate never takes a name from the
 * CSR; these checks exist so that a caller asking for something else learns it will not get it,
 * instead of receiving a certificate that differs silently from its request.
 */
import type { ParsedCsr } from '../identity/csr.js';
import { keyInfoText } from '../identity/keys.js';
import type { SpiffeId } from '../identity/spiffe-id.js';
import { MeshidError } from '../lib/errors.js';

export const MIN_RSA_BITS = 2048;
/** Go's crypto/x509 refuses larger keys too; verification cost grows with the square of the size. */
export const MAX_RSA_BITS = 8192;
const EC_CURVES = new Set(['prime256v1', 'secp384r1']);

/** Key types an SVID may carry: EC P-256 and P-384, RSA 2048 to 8192 bits. */
export function checkCsrKey(csr: ParsedCsr): void {
  const info = csr.keyInfo;
  if (info.kind === 'ec') {
    if (!EC_CURVES.has(info.curve)) {
      throw new MeshidError('csr_key_unsupported', `CSR key ${keyInfoText(info)} is not supported (use EC P-256, EC P-384 or RSA of at least ${MIN_RSA_BITS} bits)`);
    }
    return;
  }
  if (info.kind === 'rsa') {
    if (info.bits < MIN_RSA_BITS) {
      throw new MeshidError('csr_key_too_weak', `CSR key RSA-${info.bits} is too weak: RSA keys need at least ${MIN_RSA_BITS} bits`);
    }
    if (info.bits > MAX_RSA_BITS) {
      throw new MeshidError('csr_key_too_large', `CSR key RSA-${info.bits} is too large: at most ${MAX_RSA_BITS} bits`);
    }
    return;
  }
  throw new MeshidError('csr_key_unsupported', `CSR key type ${keyInfoText(info)} is not supported (use EC P-256, EC P-384 or RSA)`);
}

/**
 * The names and constraints requested. A CSR without SANs is accepted (Istio's built-in CA signs
 * the caller's identity whatever the CSR names); one that names anything is held to exactly the
 * caller's identity.
 */
export function checkCsrRequest(csr: ParsedCsr, identity: SpiffeId): void {
  if (identity.path === '') {
    throw new MeshidError('csr_identity_no_path', `the caller authenticated as ${identity.uri}, the bare trust domain; an X.509-SVID leaf needs an ID with a path`);
  }
  if (csr.basicConstraints?.ca) {
    throw new MeshidError('csr_requests_ca', 'the CSR asks for a CA certificate (basicConstraints cA=true); this CA issues only workload certificates');
  }
  const uris = csr.sans.filter((n) => n.type === 'uri');
  const others = csr.sans.filter((n) => n.type !== 'uri');
  if (others.length > 0) {
    const kinds = [...new Set(others.map((n) => (n.type === 'other' ? `GeneralName [${n.tag}]` : n.type.toUpperCase())))].join(', ');
    throw new MeshidError('csr_unprovable_sans', `the CSR asks for ${kinds} subject alternative names; only the caller's SPIFFE ID can be certified`);
  }
  if (uris.length > 1) {
    throw new MeshidError('csr_multiple_uris', `the CSR asks for ${uris.length} URI SANs; an X.509-SVID carries exactly one SPIFFE ID`);
  }
  const asked = uris[0]?.type === 'uri' ? uris[0].value : undefined;
  if (asked !== undefined && asked !== identity.uri) {
    throw new MeshidError('csr_identity_mismatch', `the CSR asks for ${JSON.stringify(asked)} but the caller authenticated as ${identity.uri}`);
  }
}

/** Proof of possession: the CSR must be signed by the key it carries. */
export function checkCsrSignature(csr: ParsedCsr): void {
  let ok: boolean;
  try {
    ok = csr.verifySignature();
  } catch (e) {
    if (e instanceof MeshidError) throw new MeshidError('csr_signature_invalid', `CSR signature: ${e.message}`);
    throw e;
  }
  if (!ok) throw new MeshidError('csr_signature_invalid', 'the CSR signature does not verify with the key it carries');
}

export interface TtlPolicy {
  /** Lifetime when the request names none. */
  readonly defaultTtlMs: number;
  /** Longer requests are clamped to this. */
  readonly maxTtlMs: number;
}

export interface ResolvedTtl {
  readonly ttlMs: number;
  /** The requested lifetime, when it was clamped. */
  readonly clampedFromMs?: number;
}

/**
 * A requested validity_duration above the maximum is clamped, not refused: the client reads the
 * lifetime from the certificate it gets (rotation keys off NotAfter), and a refusal would leave a
 * workload without an identity over a setting it cannot see. One rule for every size: any
 * positive whole number of seconds, up to int64's 2^63-1 (which a double holds only roughly, still
 * a whole number), is clamped; only negative, fractional or non-numeric values are refused.
 */
export function resolveTtl(requestedSeconds: number | undefined, policy: TtlPolicy): ResolvedTtl {
  if (requestedSeconds === undefined || requestedSeconds === 0) return { ttlMs: Math.min(policy.defaultTtlMs, policy.maxTtlMs) };
  if (!Number.isInteger(requestedSeconds) || requestedSeconds < 0) {
    throw new MeshidError('ttl_invalid', `validity_duration must be a positive number of seconds, got ${requestedSeconds}`);
  }
  const ms = requestedSeconds * 1000;
  return ms > policy.maxTtlMs ? { ttlMs: policy.maxTtlMs, clampedFromMs: ms } : { ttlMs: ms };
}

/**
 * RFC 8705 certificate-bound access tokens: a token whose `cnf` claim holds `x5t#S256` is usable
 * only over a connection whose client certificate has that thumbprint, base64url (no padding,
 * RFC 7515) of SHA-256 over the certificate's DER. The thumbprint of the peer certificate Envoy
 * forwards (attributes.source.certificate, URL-encoded PEM) is compared exactly: a padded value,
 * standard base64 or another certificate's thumbprint is a mismatch. Pure.
 */
import { createHash } from 'node:crypto';

/** The comparison, as `authz check` and the decision log show it. */
export interface TokenBinding {
  /** The token's cnf["x5t#S256"], or null when the token has no such claim. */
  readonly expected: string | null;
  /** The peer certificate's thumbprint, or null when Envoy sent no certificate. */
  readonly actual: string | null;
  /** The token is bound and the thumbprints are equal. */
  readonly bound: boolean;
  /** Why a bound token is refused (token_not_bound), when it is. */
  readonly problem?: string;
}

/** RFC 8705 x5t#S256 of a certificate: base64url (unpadded) SHA-256 of its DER. */
export function derThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

const thumbprints = new Map<string, string | null>();
const MAX_CACHED = 1024;

/** base64url(SHA-256(DER)) of the first certificate in a URL-encoded PEM, or null if there is none. */
export function certificateThumbprint(urlEncodedPem: string): string | null {
  const cached = thumbprints.get(urlEncodedPem);
  if (cached !== undefined) return cached;
  let pem: string;
  try {
    pem = decodeURIComponent(urlEncodedPem);
  } catch {
    return null;
  }
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  const out = m ? derThumbprint(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')) : null;
  if (thumbprints.size >= MAX_CACHED) thumbprints.clear();
  thumbprints.set(urlEncodedPem, out);
  return out;
}

/** The token's binding checked against the peer certificate (encoded as Envoy sends it). */
export function checkTokenBinding(claims: Readonly<Record<string, unknown>>, peerCertificate: string | undefined): TokenBinding {
  const cnf = claims.cnf;
  const raw = typeof cnf === 'object' && cnf !== null && !Array.isArray(cnf) ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  const actual = peerCertificate ? certificateThumbprint(peerCertificate) : null;
  if (raw === undefined) return { expected: null, actual, bound: false };
  if (typeof raw !== 'string') return { expected: JSON.stringify(raw), actual, bound: false, problem: 'the token\'s cnf["x5t#S256"] is not a string' };
  if (actual === null) return { expected: raw, actual, bound: false, problem: 'the token is bound to a certificate (cnf["x5t#S256"]) but the request came without a peer certificate' };
  if (raw !== actual) return { expected: raw, actual, bound: false, problem: 'the token is bound to another certificate (cnf["x5t#S256"] differs from the peer certificate\'s SHA-256 thumbprint)' };
  return { expected: raw, actual, bound: true };
}

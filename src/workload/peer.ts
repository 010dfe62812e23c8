/**
 * Who may be on the other end of a SPIFFE mTLS connection. Hostname verification does not apply
 * to SVIDs (they carry a URI SAN, no DNS name), so after OpenSSL has verified the chain to the
 * bundle, the peer's SPIFFE ID is read from the certificate's SAN extension (parsed, never split
 * out of a text rendering) and matched against what the caller expects.
 */
import { parseCertificate } from '../identity/certificate.js';
import { errorMessage } from '../lib/errors.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../identity/spiffe-id.js';

/** An exact SPIFFE ID (or one of several), every ID of a trust domain, or a predicate. */
export type PeerMatcher =
  | { readonly spiffeId: string | readonly string[] }
  | { readonly trustDomain: string }
  | ((id: SpiffeId) => boolean);

export class PeerRefused extends Error {
  override readonly name = 'PeerRefused';
}

/** The SPIFFE ID of a peer certificate (DER): exactly one URI SAN, a valid SPIFFE ID. */
export function peerSpiffeId(certDer: Uint8Array): SpiffeId {
  let uris: string[];
  try {
    uris = parseCertificate(certDer).sans.filter((s) => s.type === 'uri').map((s) => s.value);
  } catch (e) {
    throw new PeerRefused(`the peer certificate cannot be read: ${errorMessage(e)}`);
  }
  if (uris.length !== 1) throw new PeerRefused(`the peer certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one`);
  try {
    return parseSpiffeId(uris[0]!);
  } catch (e) {
    throw new PeerRefused(`the peer certificate's URI SAN is not a SPIFFE ID: ${errorMessage(e)}`);
  }
}

/** Checks a matcher's own shape once, so that a typo fails at setup rather than refusing every peer. */
export function checkMatcher(matcher: PeerMatcher): (id: SpiffeId) => boolean {
  if (typeof matcher === 'function') return matcher;
  if ('trustDomain' in matcher) {
    const td = parseTrustDomain(matcher.trustDomain);
    return (id) => id.trustDomain === td;
  }
  const wanted = new Set((typeof matcher.spiffeId === 'string' ? [matcher.spiffeId] : matcher.spiffeId).map((s) => parseSpiffeId(s).uri));
  if (wanted.size === 0) throw new RangeError('a spiffeId matcher needs at least one SPIFFE ID');
  return (id) => wanted.has(id.uri);
}

/** The peer's SPIFFE ID when it matches; throws PeerRefused saying why not. */
export function authorizePeer(match: (id: SpiffeId) => boolean, certDer: Uint8Array | undefined): SpiffeId {
  if (!certDer || certDer.length === 0) throw new PeerRefused('the peer presented no certificate');
  const id = peerSpiffeId(certDer);
  let ok: boolean;
  try {
    ok = match(id);
  } catch (e) {
    throw new PeerRefused(`the peer matcher threw for ${id.uri}: ${errorMessage(e)}`);
  }
  if (!ok) throw new PeerRefused(`peer ${id.uri} is not authorized`);
  return id;
}

/**
 * Renewal over mTLS: is the client certificate a still-valid X.509-SVID that this CA issued?
 * TLS (OpenSSL, against the trust bundle) has already checked the path at the wall clock; this
 * repeats the decision on our own terms, at the CA's clock, with the full X.509-SVID rules, and
 * then requires that the leaf was issued by this CA's issuing certificate (not merely by some
 * other CA under the same root).
 */
import { parseCertificate } from '../../identity/certificate.js';
import type { SpiffeId } from '../../identity/spiffe-id.js';
import { verifyX509Svid } from '../../identity/svid-verify.js';
import { errorMessage, MeshidError } from '../../lib/errors.js';
import type { Authority } from '../authority.js';

function refuse(detail: string): MeshidError {
  return new MeshidError('peer_svid_invalid', `client certificate refused: ${detail}`);
}

/** The SPIFFE ID of a client certificate this CA issued and that is valid at now; throws otherwise. */
export function verifyPeerSvid(leafDer: Uint8Array, authority: Authority, now: number, isRevoked?: (serial: string) => boolean): SpiffeId {
  let verified;
  let leaf;
  try {
    leaf = parseCertificate(leafDer);
    verified = verifyX509Svid([leaf, ...authority.material.chain.slice(0, -1)], [authority.root], { trustDomain: authority.trustDomain, now });
  } catch (e) {
    throw refuse(errorMessage(e));
  }
  if (verified.spiffeId.path === '') throw refuse(`${verified.spiffeId.uri} is a trust domain, not a workload identity`);
  if (verified.path[1] !== authority.issuingCertificate) throw refuse('not issued by this CA');
  if (isRevoked?.(leaf.serial)) throw refuse(`serial ${leaf.serial} of ${verified.spiffeId.uri} is revoked`);
  return verified.spiffeId;
}

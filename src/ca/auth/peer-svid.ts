/**
 * Renewal over mTLS: is the client certificate a still-valid X.509-SVID that this CA issued?
 * TLS (OpenSSL, against the trust bundle) has already checked the path at the wall clock; this
 * repeats the decision on our own terms, at the CA's clock, and reads the SPIFFE ID structurally.
 *
 * TODO(verify): once src/identity/svid-verify.ts lands on main, replace the body of
 * verifyPeerSvid with
 *   verifyX509Svid([leaf, ...authority.material.chain.slice(0, -1)], [authority.root], { trustDomain, now })
 * plus the "issued by this CA's issuing certificate" check below, and keep the error mapping.
 */
import { type Certificate, parseCertificate } from '../../identity/certificate.js';
import { parseSpiffeId, type SpiffeId } from '../../identity/spiffe-id.js';
import { errorMessage, MeshidError } from '../../lib/errors.js';
import type { Authority } from '../authority.js';

function refuse(detail: string): MeshidError {
  return new MeshidError('unauthenticated', 'peer_svid_invalid', `client certificate refused: ${detail}`);
}

/** The SPIFFE ID of a client certificate this CA issued and that is valid at now; throws otherwise. */
export function verifyPeerSvid(leafDer: Uint8Array, authority: Authority, now: number): SpiffeId {
  let leaf: Certificate;
  try {
    leaf = parseCertificate(leafDer);
  } catch (e) {
    throw refuse(errorMessage(e));
  }
  if (now < leaf.notBefore.getTime()) throw refuse(`not valid before ${leaf.notBefore.toISOString()}`);
  if (now >= leaf.notAfter.getTime()) throw refuse(`expired at ${leaf.notAfter.toISOString()}`);
  if (leaf.basicConstraints?.ca) throw refuse('it is a CA certificate');
  if (leaf.keyUsage && (!leaf.keyUsage.has('digitalSignature') || leaf.keyUsage.has('keyCertSign') || leaf.keyUsage.has('cRLSign'))) {
    throw refuse('its key usage is not that of an X.509-SVID leaf');
  }
  const uris = leaf.sans.filter((n) => n.type === 'uri');
  if (uris.length !== 1 || uris[0]!.type !== 'uri') throw refuse(`an X.509-SVID has exactly one URI SAN, this one has ${uris.length}`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!.value);
  } catch (e) {
    throw refuse(errorMessage(e));
  }
  if (id.path === '') throw refuse(`${id.uri} is a trust domain, not a workload identity`);
  if (id.trustDomain !== authority.trustDomain) throw refuse(`${id.uri} is not in the trust domain ${authority.trustDomain}`);
  const issuing = authority.issuingCertificate;
  if (!leaf.issuer.equals(issuing.subject) || !leaf.verifySignedBy(issuing.publicKey())) throw refuse('not issued by this CA');
  authority.validity(now, 0); // the CA's own chain must still be valid
  return id;
}

/**
 * Turns a CA's answer into an SVID we are willing to serve, or a specific refusal. A CA that is
 * wrong (another identity, another key, a chain that does not verify, garbage) must never get
 * its answer to Envoy: every check here runs before the manager swaps anything in.
 */
import { trustBundleFromCertificates } from '../identity/bundle.js';
import { type Certificate, certificatesToPem, parseCertificatesPem } from '../identity/certificate.js';
import { encodeDer } from '../identity/der.js';
import { type KeyPair, privateKeyPkcs8Pem } from '../identity/keys.js';
import type { SpiffeId } from '../identity/spiffe-id.js';
import { verifyX509Svid } from '../identity/svid-verify.js';
import { errorMessage, type ErrorCode, MeshidError } from '../lib/errors.js';
import type { WorkloadSvid } from '../identity/svid.js';

export interface AcceptedSvid {
  readonly svid: WorkloadSvid;
  readonly leaf: Certificate;
  /** The self-signed root that ends the CA's chain. */
  readonly root: Certificate;
}

function refused(code: ErrorCode, message: string): MeshidError {
  return new MeshidError(code, message);
}

function parseElement(pem: unknown, index: number): Certificate {
  const what = `CA chain element ${index + 1}`;
  if (typeof pem !== 'string') throw refused('ca_response_malformed', `${what} is not a string`);
  let certs: Certificate[];
  try {
    certs = parseCertificatesPem(pem, what);
  } catch (e) {
    throw refused('ca_response_malformed', errorMessage(e));
  }
  if (certs.length !== 1) throw refused('ca_response_malformed', `${what} holds ${certs.length} certificates; expected one`);
  return certs[0]!;
}

/**
 * Checks, in order: the chain has a leaf and a root and every element is one certificate; the
 * leaf names exactly the SPIFFE ID we asked for and carries our public key; the last element is a
 * self-signed root that can stand in the trust domain's bundle; the chain is a valid X.509-SVID
 * (verifyX509Svid: a path to that root, and only that root, at time now, SPIFFE leaf rules, trust
 * domain). Verifying against other trusted roots too would let an answer whose path ends at an
 * old root slip an unrelated self-signed certificate into the bundle as the "current" root.
 * With a configured bundle (configuredRoots), the operator decides which roots may issue: the
 * chain must also verify under those roots alone, or a compromised or misconfigured CA could
 * bring its own root into the bundle that Envoy trusts.
 */
export function acceptIssuedChain(
  chainPem: readonly string[],
  expected: { readonly spiffeId: SpiffeId; readonly key: KeyPair; readonly configuredRoots?: readonly Certificate[] | undefined },
  now: number,
): AcceptedSvid {
  if (!Array.isArray(chainPem) || chainPem.length < 2) {
    const n = Array.isArray(chainPem) ? chainPem.length : 0;
    throw refused('ca_chain_too_short', `the CA returned ${n} certificate(s); expected the leaf first and the root last`);
  }
  const certs = chainPem.map(parseElement);
  const leaf = certs[0]!;
  const root = certs[certs.length - 1]!;
  const uris = leaf.sans.flatMap((n) => (n.type === 'uri' ? [n.value] : []));
  if (uris.length !== 1 || uris[0] !== expected.spiffeId.uri) {
    throw refused('ca_wrong_identity', `the CA issued ${uris.length ? uris.join(', ') : 'no URI SAN'}; we asked for ${expected.spiffeId.uri}`);
  }
  const ourSpki = expected.key.publicKey.export({ type: 'spki', format: 'der' });
  if (!encodeDer(leaf.spki).equals(ourSpki)) {
    throw refused('ca_wrong_key', `the issued leaf (serial ${leaf.serial}) does not carry the public key we sent in the CSR`);
  }
  if (!root.issuer.equals(root.subject) || !root.verifySignedBy(root.publicKey())) {
    throw refused('ca_root_not_self_signed', `the last certificate of the CA's chain (${root.subjectText || 'empty subject'}) is not a self-signed root`);
  }
  try {
    trustBundleFromCertificates(expected.spiffeId.trustDomain, [root], "the CA's root");
  } catch (e) {
    throw refused('ca_root_unusable', errorMessage(e));
  }
  const served = certs.slice(0, -1);
  let expiresAt: number;
  try {
    expiresAt = verifyX509Svid(served, [root], { trustDomain: expected.spiffeId.trustDomain, now }).expiresAt.getTime();
  } catch (e) {
    throw refused('ca_chain_untrusted', `the issued chain is not a valid X.509-SVID: ${errorMessage(e)}`);
  }
  if (expected.configuredRoots && !chainsToConfiguredRoot(served, expected.configuredRoots, expected.spiffeId.trustDomain, now)) {
    throw refused(
      'ca_root_not_configured',
      `the issued chain (leaf serial ${leaf.serial}) ends at root "${root.subjectText || 'empty subject'}", which is not in the configured trust bundle (${expected.configuredRoots.length} root(s))`,
    );
  }
  return {
    svid: Object.freeze({
      spiffeId: expected.spiffeId.uri,
      certChainPem: certificatesToPem(served),
      privateKeyPem: privateKeyPkcs8Pem(expected.key.privateKey),
      expiresAt,
      version: leaf.serial,
    }),
    leaf,
    root,
  };
}

function chainsToConfiguredRoot(served: readonly Certificate[], roots: readonly Certificate[], trustDomain: string, now: number): boolean {
  if (roots.length === 0) return false;
  try {
    verifyX509Svid(served, roots, { trustDomain, now });
    return true;
  } catch {
    return false;
  }
}

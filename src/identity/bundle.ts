/**
 * Trust bundles: the root certificates of one trust domain, parsed once, with a fingerprint-based
 * version so rotation and SDS code can tell when the set of roots changed. Pure: no I/O.
 */
import crypto from 'node:crypto';
import { type ErrorCode, MeshidError } from '../lib/errors.js';
import { type Certificate, certificatesToPem, parseCertificatesPem } from './certificate.js';
import { parseTrustDomain, SpiffeIdError } from './spiffe-id.js';
import { caProblem, certificateLabel, foreignTrustDomain } from './svid-verify.js';

export interface TrustBundle {
  readonly trustDomain: string;
  /** The roots, duplicates removed, in the order first seen. */
  readonly roots: readonly Certificate[];
  /** SHA-256 of each root's DER, lowercase hex, aligned with roots. */
  readonly fingerprints: readonly string[];
  /** The roots as PEM, one CERTIFICATE block each, in the order of roots. */
  readonly pem: string;
  /** SHA-256 over the trust domain and the sorted fingerprints: changes exactly when the set of roots does. */
  readonly version: string;
}

export class TrustBundleError extends MeshidError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
  }
}

export function certificateFingerprint(cert: { readonly der: Uint8Array }): string {
  return crypto.createHash('sha256').update(cert.der).digest('hex');
}

/**
 * Parses a PEM bundle. `source` names it in errors (a file path, "CA response"). Refuses text
 * without PEM blocks, blocks that are not certificates, roots that cannot act as a CA, and roots
 * whose SPIFFE ID names another trust domain.
 */
export function parseTrustBundle(trustDomain: string, pemText: string, source = 'trust bundle'): TrustBundle {
  let certs: Certificate[];
  try {
    certs = parseCertificatesPem(pemText, source);
  } catch (e) {
    if (!(e instanceof MeshidError)) throw e;
    const code = e.code === 'pem_empty' || e.code === 'pem_bad_base64' ? 'bundle_not_pem' : 'bundle_not_certificate';
    throw new TrustBundleError(code, e.message);
  }
  return trustBundleFromCertificates(trustDomain, certs, source);
}

/** Builds a bundle from parsed roots, with the same checks as parseTrustBundle. */
export function trustBundleFromCertificates(trustDomain: string, certs: readonly Certificate[], source = 'trust bundle'): TrustBundle {
  let td: string;
  try {
    td = parseTrustDomain(trustDomain);
  } catch (e) {
    if (!(e instanceof SpiffeIdError)) throw e;
    throw new TrustBundleError('bundle_trust_domain_invalid', `${source}: ${e.message}`);
  }
  if (certs.length === 0) throw new TrustBundleError('bundle_empty', `${source}: holds no certificate`);
  const roots: Certificate[] = [];
  const fingerprints: string[] = [];
  certs.forEach((cert, i) => {
    const what = `${source}, certificate ${i + 1} (${certificateLabel(cert)})`;
    const ca = caProblem(cert);
    if (ca) throw new TrustBundleError('bundle_root_not_ca', `${what} cannot be a root: it ${ca.detail}`);
    const foreign = foreignTrustDomain(cert, td);
    if (foreign) {
      throw new TrustBundleError('bundle_root_trust_domain_mismatch', `${what} belongs to trust domain "${foreign.trustDomain}" (${foreign.uri}), not "${td}"`);
    }
    const fp = certificateFingerprint(cert);
    if (fingerprints.includes(fp)) return;
    roots.push(cert);
    fingerprints.push(fp);
  });
  const version = crypto.createHash('sha256').update(`${td}\n${[...fingerprints].sort().join('\n')}`).digest('hex');
  return Object.freeze({
    trustDomain: td,
    roots: Object.freeze(roots),
    fingerprints: Object.freeze(fingerprints),
    pem: certificatesToPem(roots),
    version,
  });
}

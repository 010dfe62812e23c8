/**
 * Workload API X.509 messages from the SVID and bundle the agent holds. Pure. The standard wants
 * DER, not PEM: certificates concatenated (leaf first), the key as PKCS#8.
 */
import { decodePemOf } from '../identity/pem.js';
import { trustDomainId } from '../identity/spiffe-id.js';
import type { TrustBundleView, WorkloadSvid } from '../identity/svid.js';
import type { X509BundlesResponse, X509SVIDResponse } from './protocol.js';

export function bundleDer(bundle: TrustBundleView): Buffer {
  return Buffer.concat(decodePemOf(bundle.rootsPem, 'CERTIFICATE', `trust bundle of ${bundle.trustDomain}`));
}

export function x509SvidMessage(svid: WorkloadSvid, bundle: TrustBundleView): X509SVIDResponse {
  return {
    svids: [
      {
        spiffe_id: svid.spiffeId,
        x509_svid: Buffer.concat(decodePemOf(svid.certChainPem, 'CERTIFICATE', `certificate chain of ${svid.spiffeId}`)),
        x509_svid_key: decodePemOf(svid.privateKeyPem, 'PRIVATE KEY', `private key of ${svid.spiffeId}`)[0]!,
        bundle: bundleDer(bundle),
      },
    ],
  };
}

export function x509BundlesMessage(bundle: TrustBundleView): X509BundlesResponse {
  return { bundles: { [trustDomainId(bundle.trustDomain)]: bundleDer(bundle) } };
}

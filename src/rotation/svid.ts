/**
 * The shapes the SVID manager hands out. They are structurally identical to what the SDS server
 * declares it consumes (src/sds/identity-source.ts); rotation does not import from sds.
 */

export interface WorkloadSvid {
  readonly spiffeId: string;
  /** PEM: the leaf first, then intermediates; no root (roots travel in the bundle). */
  readonly certChainPem: string;
  /** PEM PKCS#8 private key of the leaf. */
  readonly privateKeyPem: string;
  /** Epoch ms of the earliest notAfter on the chain. */
  readonly expiresAt: number;
  /** Changes whenever the SVID changes: the leaf's serial. */
  readonly version: string;
}

export interface TrustBundleView {
  readonly trustDomain: string;
  /** PEM of every root certificate trusted for the trust domain. */
  readonly rootsPem: string;
  /** Changes whenever the set of roots changes: a hash of the sorted root fingerprints. */
  readonly version: string;
}

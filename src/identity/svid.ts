/**
 * The SVID and trust bundle as the agent serves them: what rotation produces and what the
 * serving rooms (SDS, the Workload API) read, and the IdentitySource contract between them. It
 * lives here, below both, because more than one room consumes it; only src/cli connects the
 * SVID manager to its consumers. Plain data, PEM-encoded once.
 */
export interface WorkloadSvid {
  readonly spiffeId: string;
  /** PEM: the leaf first, then intermediates; no root (roots travel in the bundle). */
  readonly certChainPem: string;
  /** PEM PKCS#8 private key of the leaf. */
  readonly privateKeyPem: string;
  /** Epoch ms of the earliest notAfter on the chain. */
  readonly expiresAt: number;
  /** Changes whenever the SVID changes (e.g. the leaf's serial). */
  readonly version: string;
}

export interface TrustBundleView {
  readonly trustDomain: string;
  /** PEM of every root certificate trusted for the trust domain. */
  readonly rootsPem: string;
  /** Changes whenever the set of roots or the CRL changes (e.g. a hash of the sorted root fingerprints). */
  readonly version: string;
  /** PEM of the CA's current CRL (X509 CRL), verified, while it is before its nextUpdate. */
  readonly crlPem?: string;
}

/** What a serving room reads from the SVID manager. */
export interface IdentitySource {
  /** The current SVID; undefined before the first one and once it has expired (never serve an expired SVID). */
  currentSvid(): WorkloadSvid | undefined;
  /** The current trust bundle; undefined before the first one. */
  currentBundle(): TrustBundleView | undefined;
  /** listener runs after the SVID or the bundle changed; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

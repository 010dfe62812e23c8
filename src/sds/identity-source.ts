/**
 * What the SDS server consumes from the SVID manager, declared here by the consumer. The SVID
 * manager (src/rotation) has this shape without importing from src/sds: the agent's wiring in
 * src/cli is where the compiler checks that it fits.
 */
import type { TrustBundleView, WorkloadSvid } from '../identity/svid.js';

export interface IdentitySource {
  /** The current SVID; undefined before the first one and once it has expired (never serve an expired SVID). */
  currentSvid(): WorkloadSvid | undefined;
  /** The current trust bundle; undefined before the first one. */
  currentBundle(): TrustBundleView | undefined;
  /** listener runs after the SVID or the bundle changed; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

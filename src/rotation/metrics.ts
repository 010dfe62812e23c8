/**
 * What the SVID manager counts, as hooks it declares; Prometheus is wired to them later without
 * touching the manager. The manager takes a Partial<SvidMetrics>: a hook not given does nothing.
 */
import type { ErrorKind } from '../lib/errors.js';
import type { CaAuth } from './ca-signer.js';

/** Why an attempt failed: the CA's error kind, or a refusal on our side. */
export type RotationFailureKind = ErrorKind | 'invalid_response' | 'token_unreadable';

export interface SvidMetrics {
  /** A new SVID was accepted (first issuance or renewal), authenticated as `auth`. */
  rotated(auth: CaAuth['kind']): void;
  /** An attempt to obtain an SVID failed. */
  rotationFailed(kind: RotationFailureKind): void;
  /** Wall time and gRPC status (0 = OK) of one CreateCertificate call, whatever its outcome. */
  caRequest(ms: number, grpcCode: number): void;
  /** Expiry (epoch ms) of the SVID being served; undefined when none is. */
  expiry(expiresAt: number | undefined): void;
}

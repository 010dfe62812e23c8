/**
 * What the SDS server counts. Declared here so that wiring Prometheus later needs no change in the
 * server; labels are secret kinds, never secret names (file names would be unbounded).
 */
import type { SecretKind } from './resource-names.js';

export interface SdsMetrics {
  streamOpened(): void;
  streamClosed(): void;
  /** One DiscoveryResponse written to a stream or answered to a fetch. */
  responseSent(kind: SecretKind): void;
  /** A change delivered to every stream subscribed to one secret, in one pass. */
  pushCompleted(kind: SecretKind, streams: number, durationMs: number): void;
  ackReceived(kind: SecretKind): void;
  nackReceived(kind: SecretKind): void;
  /** A stream or fetch refused with a gRPC error; reason is the stable error code. */
  requestRejected(reason: string): void;
  /** A watched file changed into something unusable; the last good content is still served. */
  fileReloadFailed(kind: SecretKind): void;
}

export const noopSdsMetrics: SdsMetrics = {
  streamOpened() {},
  streamClosed() {},
  responseSent() {},
  pushCompleted() {},
  ackReceived() {},
  nackReceived() {},
  requestRejected() {},
  fileReloadFailed() {},
};

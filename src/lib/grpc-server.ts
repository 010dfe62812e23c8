/** What every meshid gRPC server does the same way: bind, and shut down with a grace period. */
import * as grpc from '@grpc/grpc-js';
import type { Clock } from './clock.js';

/**
 * Limits every meshid gRPC server sets (README, "Security limits"): idle connections are closed,
 * dead peers are found by keepalive pings, and request headers are bounded. The metadata cap is
 * above the largest bearer token we answer (MAX_BEARER_TOKEN_BYTES), so an oversized token reaches
 * the handler and gets a clear UNAUTHENTICATED instead of a reset stream with no status.
 */
export const SERVER_LIMITS = {
  /** A connection with no call for this long is closed (GOAWAY); clients reconnect on demand. */
  idleMs: 5 * 60_000,
  /** Ping a connection after this long without traffic... */
  keepaliveMs: 2 * 60_000,
  /** ...and close it when the ping is not answered within this. */
  keepaliveTimeoutMs: 20_000,
  /** Total request metadata (headers) accepted. */
  maxMetadataBytes: 128 * 1024,
} as const;

/** Largest bearer token the CA reads; larger ones are refused with a message saying so. */
export const MAX_BEARER_TOKEN_BYTES = 64 * 1024;

/** Options for new grpc.Server(...): the shared limits, plus per-server extras. */
export function serverOptions(extra: grpc.ServerOptions = {}): grpc.ServerOptions {
  return {
    'grpc.max_connection_idle_ms': SERVER_LIMITS.idleMs,
    'grpc.keepalive_time_ms': SERVER_LIMITS.keepaliveMs,
    'grpc.keepalive_timeout_ms': SERVER_LIMITS.keepaliveTimeoutMs,
    'grpc.max_metadata_size': SERVER_LIMITS.maxMetadataBytes,
    ...extra,
  };
}

/** bindAsync as a promise of the bound port. */
export function bindServer(server: grpc.Server, address: string, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port))));
}

/** Lets calls in flight finish for up to graceMs (on the injected clock), then cuts the connections. */
export function shutdownGracefully(server: grpc.Server, clock: Clock, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = clock.setTimer(graceMs, () => {
      server.forceShutdown();
      resolve();
    });
    server.tryShutdown(() => {
      timer.cancel();
      resolve();
    });
  });
}

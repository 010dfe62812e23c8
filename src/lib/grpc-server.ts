/** What every meshid gRPC server does the same way: bind, and shut down with a grace period. */
import * as grpc from '@grpc/grpc-js';
import type { Clock } from './clock.js';

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

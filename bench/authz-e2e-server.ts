/**
 * One Check server for bench:authz's end-to-end part, in its own process so that each server's
 * CPU time and heap are its own: `meshid` (decision log on), `meshid-nolog`, or `baseline` (a bare
 * grpc-js server with the same protos and options that always answers OK). Started by
 * authz-e2e.ts with fork(); reports its addresses and, on request, its CPU time over IPC.
 */
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { envoyProtos } from '../src/envoy/protos.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { GRPC_SERVER_OPTIONS, startAuthzService } from '../src/authz/server.js';

/** meshid-rl-*: the policy directory holds a RateLimitPolicy the bench request counts against. */
export type ServerMode = 'meshid' | 'meshid-nolog' | 'baseline' | 'meshid-rl-local' | 'meshid-rl-redis';

export interface ServerReady {
  readonly kind: 'ready';
  readonly port: number;
  readonly socket: string;
}
export interface ServerCpu {
  readonly kind: 'cpu';
  readonly micros: number;
}

async function main(): Promise<void> {
  const [mode, policyDir, socket] = process.argv.slice(2) as [ServerMode, string, string];
  let port: number;
  let close: () => Promise<void>;
  if (mode === 'baseline') {
    const server = new grpc.Server(GRPC_SERVER_OPTIONS);
    server.addService(envoyProtos().authzService, {
      Check(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
        callback(null, { status: { code: 0 } });
      },
    });
    const bind = (address: string) =>
      new Promise<number>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    port = await bind('127.0.0.1:0');
    await bind(`unix:${socket}`);
    close = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  } else {
    // Every decision logged, as JSON lines to /dev/null through the same kind of writer the agent
    // uses for stdout (pino's default: synchronous SonicBoom), unless BENCH_LOG_ASYNC=1 asks for a
    // buffered asynchronous one. (SonicBoom is a writable stream; its typings just do not say so.)
    const devNull = pino.destination(
      process.env.BENCH_LOG_ASYNC === '1' ? { dest: '/dev/null', sync: false, minLength: 8 * 1024 } : { dest: '/dev/null', sync: true },
    ) as unknown as NodeJS.WritableStream;
    const service = await startAuthzService(
      {
        policyDir,
        listen: { host: '127.0.0.1', port: 0 },
        socket,
        decisionLogSample: mode === 'meshid-nolog' ? 0 : 1,
        ...(mode === 'meshid-rl-redis' ? { rateLimit: { redis: { url: process.env.BENCH_REDIS_URL!, timeoutMs: 200, fallback: 'closed' as const } } } : {}),
      },
      { logger: createLogger({ destination: devNull }), clock: systemClock },
    );
    port = service.tcpPort!;
    close = () => service.close();
  }
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ kind: 'cpu', micros: u.user + u.system } satisfies ServerCpu);
    } else if (m.cmd === 'close') {
      void close().then(() => process.exit(0));
    }
  });
  process.send!({ kind: 'ready', port, socket } satisfies ServerReady);
}

main().catch((e: unknown) => {
  console.error(`bench server failed: ${(e as Error).message}`);
  process.exit(1);
});

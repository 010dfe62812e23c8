/**
 * One Check server for bench:authz's end-to-end part, in its own process so that each server's
 * CPU time and heap are its own: `meshid` (decision log on), `meshid-nolog`, or `baseline` (a bare
 * grpc-js server with the same protos and options that always answers OK). Started by
 * authz-e2e.ts with fork(); reports its addresses and, on request, its CPU time over IPC.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { envoyProtos } from '../src/envoy/protos.js';
import { systemClock } from '../src/lib/clock.js';
import { bufferedDestination, createLogger } from '../src/observability/logger.js';
import { GRPC_SERVER_OPTIONS, readJwtRules, startAuthzService } from '../src/authz/server.js';

/**
 * meshid-rl-*: the policy directory holds a RateLimitPolicy the bench request counts against.
 * meshid-jwt: bearer tokens verified with the jwtRules file in BENCH_JWT_RULES.
 */
export type ServerMode = 'meshid' | 'meshid-nolog' | 'baseline' | 'meshid-rl-local' | 'meshid-rl-redis' | 'meshid-jwt';

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
    // Every decision logged, as JSON lines to /dev/null through the writer the agent uses for
    // stdout (asynchronous, bounded: bufferedDestination), unless BENCH_LOG_SYNC=1 asks for pino's
    // synchronous SonicBoom, the agent's writer before.
    const devNull =
      process.env.BENCH_LOG_SYNC === '1'
        ? (pino.destination({ dest: '/dev/null', sync: true }) as unknown as NodeJS.WritableStream)
        : bufferedDestination({ dest: fs.openSync('/dev/null', 'w') });
    const service = await startAuthzService(
      {
        policyDir,
        listen: { host: '127.0.0.1', port: 0 },
        socket,
        decisionLogSample: mode === 'meshid-nolog' ? 0 : 1,
        ...(mode === 'meshid-jwt' ? { jwtRules: readJwtRules(process.env.BENCH_JWT_RULES!) } : {}),
        ...(mode === 'meshid-rl-redis' ? { rateLimit: { redis: { url: process.env.BENCH_REDIS_URL!, timeoutMs: 200, fallback: 'closed' as const } } } : {}),
      },
      { logger: createLogger({ destination: devNull }), clock: systemClock },
    );
    port = service.tcpPort!;
    close = () => service.close();
  }
  // BENCH_CPU_PROFILE=<file>: a CPU profile of the serving only (start-up left out), written on close.
  const profileFile = process.env.BENCH_CPU_PROFILE;
  let session: Session | undefined;
  if (profileFile) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  const stopProfile = async () => {
    if (!session || !profileFile) return;
    const { profile } = await session.post('Profiler.stop');
    fs.writeFileSync(profileFile, JSON.stringify(profile));
  };
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ kind: 'cpu', micros: u.user + u.system } satisfies ServerCpu);
    } else if (m.cmd === 'close') {
      void stopProfile()
        .then(() => close())
        .then(() => process.exit(0));
    }
  });
  process.send!({ kind: 'ready', port, socket } satisfies ServerReady);
}

main().catch((e: unknown) => {
  console.error(`bench server failed: ${(e as Error).message}`);
  process.exit(1);
});

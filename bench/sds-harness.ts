/**
 * Child process for `npm run bench:sds`: an SDS server on a Unix socket, fed by a test identity
 * source that really rotates (new key, new leaf signed by the test root), driven over IPC.
 *
 *   node dist/bench/sds-harness.js --socket PATH [--mode sds|bare|raw]
 *
 * Modes: "sds" runs meshid's SDS server; "bare" runs the transport floor used as the baseline: a
 * grpc-js server that writes the same pre-encoded response to every stream on each rotation, with
 * no SDS logic (no catalog, no per-stream protocol state); "raw" is the floor below grpc-js: a
 * node:http2 server writing one pre-framed gRPC message (framed once) to every stream, which shows
 * what grpc-js's own write path costs.
 *
 * IPC (messages from the parent -> replies):
 *   { type: 'rotate' } -> { type: 'rotated', version, at, passMs }   at: performance.timeOrigin + now() just before the new SVID
 *                         is published; passMs: how long the server's one pass over the streams took (handing every
 *                         stream its response to the transport; the bytes reach the clients after it); cpuUs: the
 *                         process's CPU time (user + system) so far, read once the new SVID exists and just before
 *                         it is published (so issuing it, a key generation and a signature, is not counted)
 *   { type: 'memory' } -> { type: 'memory', rss, heapUsed, streams }   after two GCs (run with --expose-gc)
 *   { type: 'profile-start' } -> { type: 'profile-started' }   the inspector's CPU profiler runs from here (bench:sds-profile)
 *   { type: 'profile-stop', file } -> { type: 'profile-stopped' }   the profile since profile-start, written to file
 *   { type: 'close' }  -> process exits 0 after closing the server
 * On start it sends { type: 'ready', socketPath } or { type: 'failed', error }.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { systemClock } from '../src/lib/clock.js';
import { errorMessage } from '../src/lib/errors.js';
import { silentLogger } from '../src/observability/logger.js';
import { noopSdsMetrics, type SdsMetrics } from '../src/sds/metrics.js';
import { encodeSecret } from '../src/sds/secret-encoding.js';
import { sdsServiceDefinition, startSdsServer } from '../src/sds/server.js';
import { nowMs } from '../test/helpers/sds-client.js';
import { listenOnUnixSocket } from '../src/lib/unix-socket.js';
import { TestIdentitySource } from '../test/helpers/test-identity-source.js';
import { startProfiler } from './sds-profile.js';

export type HarnessRequest = { type: 'rotate' } | { type: 'memory' } | { type: 'profile-start' } | { type: 'profile-stop'; file: string } | { type: 'close' };
export type HarnessReply =
  | { type: 'ready'; socketPath: string }
  | { type: 'failed'; error: string }
  | { type: 'rotated'; version: string; at: number; passMs: number; cpuUs: number }
  | { type: 'memory'; rss: number; heapUsed: number; streams: number }
  | { type: 'profile-started' }
  | { type: 'profile-stopped' };

interface ServerUnderTest {
  streams(): number;
  /** Publishes a new SVID; returns its version, the publication time and the duration of the push pass. */
  rotate(): { version: string; at: number; passMs: number; cpuUs: number };
  close(): Promise<void>;
}

const now = nowMs;
const cpuSoFar = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function startSds(socketPath: string): Promise<ServerUnderTest> {
  const source = new TestIdentitySource({ clock: systemClock, trustDomain: 'bench.example' });
  let passMs = NaN;
  const metrics: SdsMetrics = { ...noopSdsMetrics, pushCompleted: (_kind, _streams, ms) => (passMs = ms) };
  const server = await startSdsServer({ sdsSocket: socketPath, sdsSocketMode: 0o600 }, { source, logger: silentLogger(), clock: systemClock, metrics });
  return {
    streams: () => server.streams(),
    rotate: () => {
      const next = source.issue();
      passMs = NaN;
      const cpuUs = cpuSoFar();
      const at = now();
      source.install(next); // the SDS server pushes synchronously from the source's notification
      return { version: next.version, at, passMs, cpuUs };
    },
    close: () => server.close(),
  };
}

async function startBare(socketPath: string): Promise<ServerUnderTest> {
  const source = new TestIdentitySource({ clock: systemClock, trustDomain: 'bench.example' });
  const encode = () => {
    const svid = source.latestSvid()!;
    return encodeSecret('default', svid.version, { type: 'tls_certificate', certificateChainPem: svid.certChainPem, privateKeyPem: svid.privateKeyPem });
  };
  let current = encode();
  const calls = new Set<grpc.ServerDuplexStream<unknown, Buffer>>();
  const server = new grpc.Server();
  server.addService(sdsServiceDefinition(), {
    StreamSecrets: (call: grpc.ServerDuplexStream<unknown, Buffer>) => {
      call.once('data', () => {
        calls.add(call);
        call.write(current.response);
      });
      call.on('data', () => {}); // ACKs
      const drop = () => calls.delete(call);
      call.on('cancelled', drop);
      call.on('close', drop);
      call.on('error', drop);
    },
    FetchSecrets: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    DeltaSecrets: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
  } as grpc.UntypedServiceImplementation);
  const socket = await listenOnUnixSocket(server, socketPath, 0o600, systemClock, { name: 'sds', label: 'SDS' });
  return {
    streams: () => calls.size,
    rotate: () => {
      const next = source.issue();
      const cpuUs = cpuSoFar();
      const at = now();
      source.install(next);
      current = encode();
      for (const call of calls) call.write(current.response);
      return { version: next.version, at, passMs: now() - at, cpuUs };
    },
    close: async () => {
      socket.remove();
      server.forceShutdown();
    },
  };
}

async function startRaw(socketPath: string): Promise<ServerUnderTest> {
  const source = new TestIdentitySource({ clock: systemClock, trustDomain: 'bench.example' });
  const framed = () => {
    const svid = source.latestSvid()!;
    const bytes = encodeSecret('default', svid.version, { type: 'tls_certificate', certificateChainPem: svid.certChainPem, privateKeyPem: svid.privateKeyPem }).response;
    const frame = Buffer.allocUnsafe(5 + bytes.length);
    frame[0] = 0;
    frame.writeUInt32BE(bytes.length, 1);
    bytes.copy(frame, 5);
    return frame;
  };
  let current = framed();
  const streams = new Set<http2.ServerHttp2Stream>();
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('data', () => {
      streams.add(stream);
      stream.write(current);
    });
    stream.on('data', () => {}); // the first request, then ACKs
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    const drop = () => streams.delete(stream);
    stream.on('close', drop);
    stream.on('error', drop);
  });
  fs.rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
  return {
    streams: () => streams.size,
    rotate: () => {
      const next = source.issue();
      const cpuUs = cpuSoFar();
      const at = now();
      source.install(next);
      current = framed();
      for (const stream of streams) stream.write(current);
      return { version: next.version, at, passMs: now() - at, cpuUs };
    },
    close: async () => {
      for (const stream of streams) stream.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(socketPath, { force: true });
    },
  };
}

function send(reply: HarnessReply): void {
  process.send?.(reply);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const socketPath = arg('socket');
  const mode = arg('mode') ?? 'sds';
  if (!socketPath || !process.send || (mode !== 'sds' && mode !== 'bare' && mode !== 'raw')) {
    process.stderr.write('usage: (forked with IPC) sds-harness --socket PATH [--mode sds|bare|raw]\n');
    process.exitCode = 2;
    return;
  }
  let server: ServerUnderTest;
  try {
    server = mode === 'sds' ? await startSds(socketPath) : mode === 'bare' ? await startBare(socketPath) : await startRaw(socketPath);
  } catch (e) {
    send({ type: 'failed', error: errorMessage(e) });
    process.exitCode = 1;
    return;
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  let profiler: Awaited<ReturnType<typeof startProfiler>> | undefined;
  process.on('message', (msg: HarnessRequest) => {
    void (async () => {
      if (msg.type === 'rotate') {
        send({ type: 'rotated', ...server.rotate() });
      } else if (msg.type === 'memory') {
        gc?.();
        await new Promise((r) => setTimeout(r, 100));
        gc?.();
        const m = process.memoryUsage();
        send({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed, streams: server.streams() });
      } else if (msg.type === 'profile-start') {
        profiler = await startProfiler();
        send({ type: 'profile-started' });
      } else if (msg.type === 'profile-stop') {
        const profile = await profiler!.stop();
        profiler = undefined;
        fs.writeFileSync(msg.file, JSON.stringify(profile));
        send({ type: 'profile-stopped' });
      } else if (msg.type === 'close') {
        await server.close();
        process.disconnect();
      }
    })();
  });
  process.on('disconnect', () => void server.close().finally(() => process.exit(0)));
  send({ type: 'ready', socketPath });
}

await main();

/** Shared setup for the Workload API tests: a server on a temp socket over a test identity, and raw calls to it. */
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type JwtSvidSource, startWorkloadApiServer, type WorkloadApiServer } from '../../src/workload/server.js';
import { SECURITY_HEADER, workloadApiDefinition } from '../../src/workload/protocol.js';
import { TestIdentitySource, type TestIdentityOptions } from '../helpers/test-identity-source.js';
import { captureLogs, type LogLine } from '../helpers/logs.js';
import { tempDir } from '../helpers/tmp.js';

export interface WorkloadStand {
  readonly server: WorkloadApiServer;
  readonly source: TestIdentitySource;
  readonly clock: FakeClock;
  readonly dir: string;
  readonly logs: LogLine[];
  /** A raw gRPC client on the socket (closed at teardown). */
  raw(): grpc.Client;
}

export async function startWorkloadStand(t: ExecutionContext, o: { identity?: Partial<TestIdentityOptions>; jwt?: JwtSvidSource } = {}): Promise<WorkloadStand> {
  const dir = tempDir(t, 'meshid-wl-');
  const clock = new FakeClock(Date.now());
  const source = new TestIdentitySource({ clock, ...o.identity });
  const { logger, lines } = captureLogs();
  const server = await startWorkloadApiServer(
    { workloadApiSocket: path.join(dir, 'workload.sock'), workloadApiSocketMode: 0o600 },
    { source, logger, clock, ...(o.jwt ? { jwt: o.jwt } : {}) },
  );
  const clients: grpc.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.close();
  });
  return {
    server,
    source,
    clock,
    dir,
    logs: lines,
    raw() {
      const c = new grpc.Client(`unix:${server.socketPath}`, grpc.credentials.createInsecure());
      clients.push(c);
      return c;
    },
  };
}

/** Metadata with the security header set to value (null: without it). */
export function securityMetadata(value: string | null = 'true'): grpc.Metadata {
  const md = new grpc.Metadata();
  if (value !== null) md.set(SECURITY_HEADER, value);
  return md;
}

/** A unary call's answer or its error. */
export function unary<Res>(client: grpc.Client, method: string, request: object, md: grpc.Metadata, timeoutMs = 5000): Promise<{ ok: true; res: Res } | { ok: false; err: grpc.ServiceError }> {
  const m = (workloadApiDefinition() as grpc.ServiceDefinition)[method]!;
  return new Promise((resolve) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, { deadline: Date.now() + timeoutMs }, (err, res) =>
      resolve(err ? { ok: false, err } : { ok: true, res: res as Res }),
    ),
  );
}

/** Collects the messages of a server stream; `error` resolves when the stream fails. */
export function openStream<Res>(client: grpc.Client, method: string, md: grpc.Metadata, options: grpc.CallOptions = {}) {
  const m = (workloadApiDefinition() as grpc.ServiceDefinition)[method]!;
  const call = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, md, options);
  const messages: Res[] = [];
  call.on('data', (r: Res) => messages.push(r));
  const error = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
  return { call, messages, error };
}

/** Shared setup for the SDS tests: a server on a temp socket, a test identity, counting metrics, captured logs. */
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { FakeClock } from '../helpers/fake-clock.js';
import type { Logger } from '../../src/observability/logger.js';
import type { SdsMetrics } from '../../src/sds/metrics.js';
import type { NamedCertificateSource } from '../../src/sds/named-certs.js';
import type { SecretKind } from '../../src/sds/resource-names.js';
import { type SdsServer, type SdsServerConfig, startSdsServer } from '../../src/sds/server.js';
import type { PartnerRootsSource } from '../../src/sds/secret-catalog.js';
import { SdsClient, type SdsClientOptions } from '../helpers/sds-client.js';
import { TestIdentitySource, type TestIdentityOptions } from '../helpers/test-identity-source.js';
import { tempDir } from '../helpers/tmp.js';
import { captureLogs, type LogLine } from '../helpers/logs.js';
export type { LogLine };


export function captureLogger(): { logger: Logger; lines: () => LogLine[] } {
  const { logger, lines } = captureLogs();
  return { logger, lines: () => lines };
}

export class CountingMetrics implements SdsMetrics {
  opened = 0;
  closed = 0;
  responses = new Map<SecretKind, number>();
  acks = 0;
  nacks = 0;
  rejected: string[] = [];
  reloadFailures = 0;
  pushes: Array<{ kind: SecretKind; streams: number }> = [];
  streamOpened() {
    this.opened++;
  }
  streamClosed() {
    this.closed++;
  }
  responseSent(kind: SecretKind) {
    this.responses.set(kind, (this.responses.get(kind) ?? 0) + 1);
  }
  pushCompleted(kind: SecretKind, streams: number) {
    this.pushes.push({ kind, streams });
  }
  ackReceived() {
    this.acks++;
  }
  nackReceived() {
    this.nacks++;
  }
  requestRejected(reason: string) {
    this.rejected.push(reason);
  }
  fileReloadFailed() {
    this.reloadFailures++;
  }
}

export interface TestServer {
  readonly server: SdsServer;
  readonly source: TestIdentitySource;
  readonly clock: FakeClock;
  readonly metrics: CountingMetrics;
  readonly logs: () => LogLine[];
  readonly dir: string;
  /** A new Envoy-like client on the server's socket, closed at teardown. */
  client(options?: Partial<SdsClientOptions>): SdsClient;
}

export interface TestServerOptions {
  readonly identity?: Partial<TestIdentityOptions>;
  readonly config?: Partial<SdsServerConfig>;
  readonly socketPath?: string;
  /** The clock to share with other parts of the test (default a new FakeClock at now). */
  readonly clock?: FakeClock;
  readonly named?: NamedCertificateSource;
  readonly partners?: PartnerRootsSource;
}

export async function startTestServer(t: ExecutionContext, options: TestServerOptions = {}): Promise<TestServer> {
  const dir = tempDir(t, 'meshid-sds-');
  const clock = options.clock ?? new FakeClock(Date.now());
  const source = new TestIdentitySource({ clock, ...options.identity });
  const metrics = new CountingMetrics();
  const { logger, lines } = captureLogger();
  const server = await startSdsServer(
    { sdsSocket: options.socketPath ?? path.join(dir, 'sds.sock'), sdsSocketMode: 0o600, fileDebounceMs: 50, sdsFileDirs: [os.tmpdir()], ...options.config },
    { source, logger, clock, metrics, ...(options.partners ? { partners: options.partners } : {}), ...(options.named ? { named: options.named } : {}) },
  );
  const clients: SdsClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.close();
  });
  return {
    server,
    source,
    clock,
    metrics,
    logs: lines,
    dir,
    client(o = {}) {
      const c = new SdsClient({ socketPath: server.socketPath, node: { id: 'sidecar~10.0.0.1~app.default~default.svc.cluster.local', cluster: 'app' }, ...o });
      clients.push(c);
      return c;
    },
  };
}

/**
 * How long a test waits for something that must happen. Only a bound on a hang: a passing test
 * never waits it out, so it is generous for a loaded machine.
 */
export const WAIT_MS = 20_000;

/** Resolves when cond() holds, polling real time (for effects of real I/O, never for rotation timing). */
export async function eventually(cond: () => boolean, timeoutMs = WAIT_MS, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Lets real file events arrive and moves the fake clock over the debounce, until cond holds. */
export async function pumpUntil(clock: FakeClock, cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await clock.advance(60);
    await new Promise((r) => setTimeout(r, 10));
  }
}

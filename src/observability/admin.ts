/**
 * The admin HTTP endpoint: /healthz (the process is alive and its event loop turns), /readyz
 * (every readiness check passes) and /metrics (Prometheus text format). Kubernetes probes and
 * Prometheus scrape it; it holds no secrets.
 */
import http from 'node:http';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { AddressInfo } from 'node:net';
import { formatHostPort, type HostPort } from '../config/options.js';

export type ReadinessChecks = () => Record<string, boolean>;

export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export async function startAdminServer(listen: HostPort, readiness: ReadinessChecks, metrics: MetricsSource): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const checks = safeChecks(readiness);
      const ready = Object.values(checks).every(Boolean);
      // The pid, so an operator knows which process `kill -USR1` should reach (not npm's).
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ready, checks, pid: process.pid })}\n`);
      return;
    }
    if (path === '/metrics') {
      metrics.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(e as Error).message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new MeshidError('listen_failed', `admin endpoint cannot listen on ${formatHostPort(listen)} (--admin-listen): ${errorMessage(e)}`)));
    server.listen(listen.port, listen.host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://${formatHostPort({ host: listen.host, port })}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A readiness check that throws counts as not ready, with its name kept. */
function safeChecks(readiness: ReadinessChecks): Record<string, boolean> {
  try {
    return readiness();
  } catch {
    return { readiness: false };
  }
}

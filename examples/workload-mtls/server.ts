/**
 * An HTTPS server with mutual TLS from the SPIFFE Workload API, through `meshid/workload`: it
 * serves with the workload's current X.509-SVID (replaced on every rotation without a restart)
 * and accepts only clients whose SPIFFE ID the matcher allows.
 *
 *   SPIFFE_ENDPOINT_SOCKET=unix:///run/meshid/workload.sock node dist/examples/workload-mtls/server.js spiffe://cluster.local/ns/shop/sa/frontend
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { type PeerMatcher, peerSpiffeId, WorkloadApiClient } from 'meshid/workload';

export interface ExampleServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startExampleServer(workload: WorkloadApiClient, allow: PeerMatcher, port = 0): Promise<ExampleServer> {
  await workload.ready();
  const server = https.createServer(workload.serverOptions(), (req, res) => {
    // attachServer ends connections from peers the matcher does not allow as soon as their
    // handshake completes, before the HTTP parser sees them: every request here is from an allowed peer.
    const cert = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
    res.end(`hello ${peerSpiffeId(cert.raw).uri}, this is ${workload.current()!.spiffeId}\n`);
  });
  const detach = workload.attachServer(server, allow);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        detach();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const allowed = process.argv[2];
  if (!allowed) {
    console.error('usage: server.js SPIFFE-ID-OF-THE-CLIENT [PORT]');
    process.exit(2);
  }
  const workload = new WorkloadApiClient();
  workload.on('update', (ctx) => console.log(`SVID ${ctx.spiffeId}, expires ${ctx.expiresAt.toISOString()}`));
  const server = await startExampleServer(workload, { spiffeId: allowed }, Number(process.argv[3] ?? 8443));
  console.log(`listening on 127.0.0.1:${server.port}`);
}

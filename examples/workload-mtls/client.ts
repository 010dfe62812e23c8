/**
 * An HTTPS client with mutual TLS from the SPIFFE Workload API, through `meshid/workload`: every
 * request presents the workload's current X.509-SVID and checks the server's SPIFFE ID (not its
 * hostname: SVIDs carry no DNS name).
 *
 *   SPIFFE_ENDPOINT_SOCKET=unix:///run/meshid/workload.sock node dist/examples/workload-mtls/client.js https://127.0.0.1:8443/ spiffe://cluster.local/ns/shop/sa/orders
 */
import https from 'node:https';
import { pathToFileURL } from 'node:url';
import { type PeerMatcher, WorkloadApiClient } from 'meshid/workload';

export interface ExampleAnswer {
  readonly status: number;
  readonly body: string;
  /** The serial of the certificate the server presented. */
  readonly serverSerial: string;
}

/** One GET over a new connection (agent: false), with the SVID current at this moment. */
export function get(workload: WorkloadApiClient, url: string, server: PeerMatcher): Promise<ExampleAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...workload.clientOptions(server), agent: false, timeout: 5000 }, (res) => {
      const serverSerial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverSerial }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [url, serverId] = process.argv.slice(2);
  if (!url || !serverId) {
    console.error('usage: client.js URL SPIFFE-ID-OF-THE-SERVER');
    process.exit(2);
  }
  const workload = new WorkloadApiClient();
  await workload.ready();
  for (;;) {
    try {
      const r = await get(workload, url, { spiffeId: serverId });
      console.log(`${r.status} ${r.body.trim()}`);
    } catch (e) {
      console.error(`request failed: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

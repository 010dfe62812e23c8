/**
 * A stand-in for Envoy's data path: TLS endpoints configured only from what SDS delivers
 * (WorkloadTls), with mutual TLS, the peer checked against the bundle by OpenSSL and against an
 * expected SPIFFE ID read structurally from the peer certificate's URI SAN. Each push swaps the
 * secure context used for new connections.
 */
import net from 'node:net';
import tls from 'node:tls';
import { parseCertificate } from '../../src/identity/certificate.js';
import { peerSpiffeId, type WorkloadTls } from '../helpers/workload-tls.js';

function serialOf(raw: Buffer): string {
  return parseCertificate(raw).serial;
}

/** Server side: answers "ping N" with "pong N <own serial>", only to the expected peer. */
export class SidecarServer {
  readonly server: tls.Server;
  readonly clientSerials = new Set<string>();
  rejectedPeers = 0;
  handshakeErrors: string[] = [];

  constructor(secrets: WorkloadTls, expectedPeer: string) {
    this.server = tls.createServer({ ...secrets.current(), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
      const raw = socket.getPeerCertificate().raw;
      if (!socket.authorized || peerSpiffeId(raw) !== expectedPeer) {
        this.rejectedPeers++;
        socket.destroy();
        return;
      }
      this.clientSerials.add(serialOf(raw));
      socket.setEncoding('utf8');
      let buffered = '';
      socket.on('data', (d: string) => {
        buffered += d;
        if (!buffered.endsWith('\n')) return;
        socket.end(`pong ${buffered.trim().split(' ')[1]} ${secrets.ownSerial()}\n`);
      });
      socket.on('error', () => {});
    });
    this.server.on('tlsClientError', (e) => this.handshakeErrors.push(e.message));
    // Each push: new connections use the new certificate, key and trusted CAs.
    secrets.onChange((m) => this.server.setSecureContext({ ...m, minVersion: 'TLSv1.3' }));
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as net.AddressInfo).port)));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Client side: a new connection per request, with a secure context rebuilt on each push. */
export class SidecarClient {
  private context: tls.SecureContext;

  constructor(
    secrets: WorkloadTls,
    private readonly expectedPeer: string,
    private readonly port: number,
  ) {
    this.context = tls.createSecureContext({ ...secrets.current(), minVersion: 'TLSv1.3' });
    secrets.onChange((m) => (this.context = tls.createSecureContext({ ...m, minVersion: 'TLSv1.3' })));
  }

  /** One request; resolves with the serial the server presented and the one it reports, or rejects. */
  request(n: number, context: tls.SecureContext = this.context): Promise<{ presented: string; reported: string }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: this.port,
        secureContext: context,
        checkServerIdentity: (_host, cert) =>
          peerSpiffeId(cert.raw) === this.expectedPeer ? undefined : new Error(`server is ${peerSpiffeId(cert.raw)}, expected ${this.expectedPeer}`),
      });
      let reply = '';
      let presented = '';
      socket.setEncoding('utf8');
      socket.on('secureConnect', () => {
        presented = serialOf(socket.getPeerCertificate().raw);
        socket.write(`ping ${n}\n`);
      });
      socket.on('data', (d: string) => (reply += d));
      socket.on('error', reject);
      socket.on('close', () => {
        const m = /^pong (\d+) ([0-9a-f]+)\n$/.exec(reply);
        if (!m || Number(m[1]) !== n) reject(new Error(`request ${n}: no pong (got ${JSON.stringify(reply)})`));
        else resolve({ presented, reported: m[2]! });
      });
    });
  }
}

/**
 * A stand-in for Envoy's data path: TLS endpoints configured only from what SDS delivers (the
 * "default" certificate and key, the "ROOTCA" trusted CAs), with mutual TLS, the peer checked
 * against the bundle by OpenSSL and against an expected SPIFFE ID read structurally from the
 * peer certificate's URI SAN. Each push swaps the secure context used for new connections.
 */
import net from 'node:net';
import tls from 'node:tls';
import { parseCertificate, parseCertificatesPem } from '../../src/identity/certificate.js';
import type { EnvoySdsClient, SecretWatch } from '../../src/sds/client.js';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** The peer's SPIFFE ID: the one URI SAN of its leaf, from the parsed extension. */
export function peerSpiffeId(raw: Buffer | undefined): string | undefined {
  if (!raw?.length) return undefined;
  const uris = parseCertificate(raw).sans.filter((n) => n.type === 'uri');
  return uris.length === 1 ? uris[0]!.value : undefined;
}

function serialOf(raw: Buffer): string {
  return parseCertificate(raw).serial;
}

/** The TLS configuration of one sidecar, kept current from its SDS streams. */
export class SidecarSecrets {
  private readonly certWatch: SecretWatch;
  private readonly rootWatch: SecretWatch;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private material: TlsMaterial | undefined;
  /** Versions currently applied: [default, ROOTCA]. */
  applied: [string | undefined, string | undefined] = [undefined, undefined];

  constructor(sds: EnvoySdsClient) {
    this.certWatch = sds.subscribe('default');
    this.rootWatch = sds.subscribe('ROOTCA');
    this.certWatch.onUpdate(() => this.apply());
    this.rootWatch.onUpdate(() => this.apply());
  }

  async ready(): Promise<void> {
    await Promise.all([this.certWatch.waitFor(() => true), this.rootWatch.waitFor(() => true)]);
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error('no TLS material yet');
    return this.material;
  }

  /** Serial of the leaf this sidecar presents now. */
  ownSerial(): string {
    return parseCertificatesPem(this.current().cert, 'own chain')[0]!.serial;
  }

  onChange(listener: (m: TlsMaterial) => void): void {
    this.listeners.add(listener);
  }

  /** Resolves once the versions given are applied. */
  async waitApplied(certVersion: string | undefined, rootVersion: string | undefined): Promise<void> {
    await Promise.all([
      certVersion ? this.certWatch.waitFor((s) => s.version === certVersion) : undefined,
      rootVersion ? this.rootWatch.waitFor((s) => s.version === rootVersion) : undefined,
    ]);
  }

  nacks(): number {
    return this.certWatch.nacks.length + this.rootWatch.nacks.length;
  }

  private apply(): void {
    const cert = this.certWatch.latest();
    const roots = this.rootWatch.latest();
    if (!cert || !roots) return;
    this.material = {
      key: cert.secret.tlsCertificate!.privateKey,
      cert: cert.secret.tlsCertificate!.certificateChain,
      ca: roots.secret.validationContext!.trustedCa,
    };
    this.applied = [cert.version, roots.version];
    for (const l of this.listeners) l(this.material);
  }
}

/** Server side: answers "ping N" with "pong N <own serial>", only to the expected peer. */
export class SidecarServer {
  readonly server: tls.Server;
  readonly clientSerials = new Set<string>();
  rejectedPeers = 0;
  handshakeErrors: string[] = [];

  constructor(secrets: SidecarSecrets, expectedPeer: string) {
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
    secrets: SidecarSecrets,
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

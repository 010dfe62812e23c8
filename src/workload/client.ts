/**
 * `meshid/workload`: a Node client of the SPIFFE Workload API (meshid's agent, or any other that
 * speaks the standard, such as SPIRE's). It keeps the current X.509-SVID and bundle, emits
 * "update" on every rotation, and hands out TLS settings that always hold the current
 * certificate, with peer checks by SPIFFE ID instead of hostname:
 *
 *   const workload = new WorkloadApiClient({ socketPath: '/run/meshid/workload.sock' });
 *   await workload.ready();
 *   const server = https.createServer(workload.serverOptions(), app);
 *   workload.attachServer(server, { trustDomain: 'example.org' });      // new certificates, peer checks
 *   https.request(url, { ...workload.clientOptions({ spiffeId: 'spiffe://example.org/ns/shop/sa/orders' }) });
 */
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { certificatesToPem, parseCertificate } from '../identity/certificate.js';
import { splitDer } from '../identity/der.js';
import { encodePem } from '../identity/pem.js';
import { Backoff } from '../lib/backoff.js';
import { type Clock, systemClock, type Timer } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import { authorizePeer, checkMatcher, type PeerMatcher } from './peer.js';
import {
  fromStruct,
  type JWTBundlesResponse__Output,
  type JWTSVIDResponse__Output,
  SECURITY_HEADER,
  SECURITY_HEADER_VALUE,
  type ValidateJWTSVIDResponse__Output,
  workloadApiDefinition,
  type X509SVIDResponse__Output,
} from './protocol.js';

export { authorizePeer, checkMatcher, PeerRefused, peerSpiffeId, type PeerMatcher } from './peer.js';

/** What the client holds: the first SVID of the last response, as PEM, and a SecureContext for it. */
export interface X509Context {
  readonly spiffeId: string;
  /** Leaf first, then intermediates. */
  readonly certChainPem: string;
  /** PKCS#8. */
  readonly privateKeyPem: string;
  /** Roots of the SVID's trust domain. */
  readonly bundlePem: string;
  /** Earliest notAfter on the chain. */
  readonly expiresAt: Date;
  /** Key, chain and the bundle as trusted CAs. */
  readonly secureContext: tls.SecureContext;
}

export interface WorkloadClientOptions {
  /** The agent's socket: a path or a unix: URI. Default: $SPIFFE_ENDPOINT_SOCKET, as the standard says. */
  readonly socketPath?: string;
  readonly clock?: Clock;
  /** Reconnect backoff after the stream breaks (default 100 ms to 10 s). */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** Deadline of unary JWT calls (default 10 s). */
  readonly callTimeoutMs?: number;
}

/** Turns the standard's SPIFFE_ENDPOINT_SOCKET forms (unix:///p, unix:/p) or a bare path into a grpc-js target. */
export function workloadApiTarget(socket: string | undefined): string {
  if (!socket) throw new Error('no Workload API socket: pass socketPath or set SPIFFE_ENDPOINT_SOCKET (e.g. unix:///run/meshid/workload.sock)');
  const m = /^unix:(?:\/\/)?(\/.*)$/.exec(socket);
  if (m) return `unix:${m[1]}`;
  if (socket.startsWith('/')) return `unix:${socket}`;
  throw new Error(`Workload API socket ${JSON.stringify(socket)}: expected an absolute path or unix:///path`);
}

export declare interface WorkloadApiClient {
  on(event: 'update', listener: (ctx: X509Context) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  once(event: 'update', listener: (ctx: X509Context) => void): this;
  off(event: 'update', listener: (ctx: X509Context) => void): this;
}

export class WorkloadApiClient extends EventEmitter {
  private readonly client: grpc.Client;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly callTimeoutMs: number;
  private readonly def = workloadApiDefinition();
  private stream: grpc.ClientReadableStream<X509SVIDResponse__Output> | undefined;
  private retry: Timer | undefined;
  private ctx: X509Context | undefined;
  private closed = false;

  constructor(options: WorkloadClientOptions = {}) {
    super();
    this.clock = options.clock ?? systemClock;
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.backoff = new Backoff({ initialMs: options.reconnectMinMs ?? 100, maxMs: options.reconnectMaxMs ?? 10_000, multiplier: 2 });
    this.client = new grpc.Client(workloadApiTarget(options.socketPath ?? process.env.SPIFFE_ENDPOINT_SOCKET), grpc.credentials.createInsecure());
    this.watch();
  }

  /** The current SVID; undefined before the first one. */
  current(): X509Context | undefined {
    return this.ctx;
  }

  /** Resolves with the first SVID (at once if there is one). */
  ready(): Promise<X509Context> {
    if (this.ctx) return Promise.resolve(this.ctx);
    if (this.closed) return Promise.reject(new Error('the Workload API client is closed'));
    return new Promise((resolve) => this.once('update', resolve));
  }

  /** The SecureContext of the current SVID; throws before the first one. */
  secureContext(): tls.SecureContext {
    if (!this.ctx) throw new Error('no X.509-SVID yet: await ready() first');
    return this.ctx.secureContext;
  }

  /**
   * Options for tls.createServer / https.createServer: the current SVID, the bundle as CAs, and a
   * client certificate required and verified. Pair with attachServer, which follows rotations and
   * checks the peer's SPIFFE ID.
   */
  serverOptions(): tls.TlsOptions {
    const ctx = this.requireContext();
    return { key: ctx.privateKeyPem, cert: ctx.certChainPem, ca: ctx.bundlePem, requestCert: true, rejectUnauthorized: true };
  }

  /**
   * Keeps server on the current SVID (setSecureContext on every update: new connections get the
   * new certificate, open ones keep theirs) and ends every connection whose peer does not match,
   * before any byte of it is read. Returns a function that detaches.
   */
  attachServer(server: tls.Server, matcher: PeerMatcher): () => void {
    const match = checkMatcher(matcher);
    const onUpdate = () => server.setSecureContext(this.serverOptions());
    const onSecure = (socket: tls.TLSSocket) => {
      try {
        authorizePeer(match, socket.getPeerCertificate().raw);
      } catch (e) {
        this.emit('peer-refused', e);
        socket.destroy();
      }
    };
    this.on('update', onUpdate);
    // Before the HTTP server's own listener: a refused socket must never reach a request parser.
    server.prependListener('secureConnection', onSecure);
    return () => {
      this.off('update', onUpdate);
      server.off('secureConnection', onSecure);
    };
  }

  /**
   * Options for tls.connect / https.request: the current SVID and bundle (a SecureContext), and the
   * server checked by SPIFFE ID in place of its hostname. Call it per connection, so each one uses
   * the certificate current at that time. undici: `new Agent({ connect: workload.clientOptions(m) })`.
   */
  clientOptions(matcher: PeerMatcher): tls.ConnectionOptions {
    const match = checkMatcher(matcher);
    return {
      secureContext: this.secureContext(),
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        try {
          authorizePeer(match, cert.raw);
          return undefined;
        } catch (e) {
          return e as Error;
        }
      },
    };
  }

  /** A JWT-SVID for the audiences. */
  async fetchJwtSvid(audience: string | readonly string[], spiffeId?: string): Promise<{ spiffeId: string; token: string }> {
    const m = this.def.FetchJWTSVID;
    const res = await this.unary<JWTSVIDResponse__Output>(m, { audience: typeof audience === 'string' ? [audience] : [...audience], ...(spiffeId ? { spiffe_id: spiffeId } : {}) });
    const svid = res.svids?.[0];
    if (!svid?.svid || !svid.spiffe_id) throw new Error('the Workload API answered FetchJWTSVID with no SVID');
    return { spiffeId: svid.spiffe_id, token: svid.svid };
  }

  /** Validates a JWT-SVID for one audience with the agent; resolves with its SPIFFE ID and claims. */
  async validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const res = await this.unary<ValidateJWTSVIDResponse__Output>(this.def.ValidateJWTSVID, { svid: token, audience });
    return { spiffeId: res.spiffe_id ?? '', claims: fromStruct(res.claims) };
  }

  /** The JWT bundles as they are now (JWKS per trust domain ID): the first message of FetchJWTBundles. */
  fetchJwtBundles(): Promise<Record<string, unknown>> {
    const m = this.def.FetchJWTBundles;
    return new Promise((resolve, reject) => {
      const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, this.metadata(), { deadline: this.deadline() });
      call.once('data', (res: JWTBundlesResponse__Output) => {
        call.cancel();
        resolve(Object.fromEntries(Object.entries(res.bundles ?? {}).map(([td, b]) => [td, JSON.parse(Buffer.from(b).toString('utf8')) as unknown])));
      });
      call.on('error', (e: grpc.ServiceError) => {
        if (e.code !== grpc.status.CANCELLED) reject(e);
      });
    });
  }

  close(): void {
    this.closed = true;
    this.retry?.cancel();
    this.stream?.cancel();
    this.client.close();
  }

  // ---- internals ------------------------------------------------------------------------------

  private requireContext(): X509Context {
    if (!this.ctx) throw new Error('no X.509-SVID yet: await ready() first');
    return this.ctx;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, SECURITY_HEADER_VALUE);
    return md;
  }

  private deadline(): Date {
    return new Date(Date.now() + this.callTimeoutMs);
  }

  private unary<Res>(m: grpc.MethodDefinition<object, object>, request: object): Promise<Res> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, this.metadata(), { deadline: this.deadline() }, (err, res) =>
        err ? reject(err) : resolve(res as Res),
      ),
    );
  }

  /** The FetchX509SVID stream, reopened with backoff whenever it ends; the last SVID stays in use meanwhile. */
  private watch(): void {
    if (this.closed) return;
    const m = this.def.FetchX509SVID;
    const stream = this.client.makeServerStreamRequest<object, X509SVIDResponse__Output>(m.path, m.requestSerialize, m.responseDeserialize, {}, this.metadata());
    this.stream = stream;
    stream.on('data', (res: X509SVIDResponse__Output) => {
      this.backoff.reset();
      try {
        this.ctx = contextFrom(res);
      } catch (e) {
        this.emit('error', new Error(`unusable X.509-SVID response: ${errorMessage(e)}`));
        return;
      }
      this.emit('update', this.ctx);
    });
    let ended = false;
    const again = (e?: grpc.ServiceError) => {
      if (ended || this.closed) return;
      ended = true;
      if (e && e.code !== grpc.status.UNAVAILABLE && this.listenerCount('error') > 0) this.emit('error', e);
      this.retry = this.clock.setTimer(this.backoff.next(), () => this.watch());
    };
    stream.on('error', again);
    stream.on('end', () => again());
  }
}

/** The first SVID of a response as PEM and a SecureContext; throws on anything unusable. */
function contextFrom(res: X509SVIDResponse__Output): X509Context {
  const svid = res.svids?.[0];
  if (!svid) throw new Error('no SVID in the response');
  if (!svid.spiffe_id) throw new Error('the SVID has no spiffe_id');
  if (!svid.x509_svid_key?.length) throw new Error('the SVID has no x509_svid_key');
  const chain = splitDer(svid.x509_svid ?? Buffer.alloc(0), 'x509_svid').map(parseCertificate);
  const roots = splitDer(svid.bundle ?? Buffer.alloc(0), 'bundle').map(parseCertificate);
  if (chain.length === 0) throw new Error('x509_svid holds no certificate');
  if (roots.length === 0) throw new Error('bundle holds no certificate');
  const certChainPem = certificatesToPem(chain);
  const privateKeyPem = encodePem('PRIVATE KEY', svid.x509_svid_key);
  const bundlePem = certificatesToPem(roots);
  const expiresAt = new Date(Math.min(...chain.map((c) => c.notAfter.getTime())));
  const secureContext = tls.createSecureContext({ key: privateKeyPem, cert: certChainPem, ca: bundlePem });
  return { spiffeId: svid.spiffe_id, certChainPem, privateKeyPem, bundlePem, expiresAt, secureContext };
}

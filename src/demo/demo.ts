/**
 * `meshid dev --demo`: two workloads that get their identities over SDS from their own agents and
 * talk mTLS to each other, so a newcomer sees the whole loop. The "orders" side plays Envoy's
 * inbound role: it requires a client certificate from the trust domain, then asks its agent's
 * ext_authz service about every request (with the peer certificate, as include_peer_certificate
 * does) and answers 200 or Envoy's 403. The "frontend" side sends a fixed round of requests,
 * some allowed and some denied by deploy/policies.
 */
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { type CheckRequest, type CheckResponse__Output, envoyProtos } from '../envoy/protos.js';
import { certificatePem } from '../identity/pem.js';
import { errorMessage } from '../lib/errors.js';
import { peerSpiffeId, type TlsMaterial, type TlsSource } from './sds-tls.js';

export interface DemoRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One round of the demo: allowed by allow-shop, denied by deny-admin, denied by default. */
export const DEMO_ROUND: readonly DemoRequest[] = [
  { method: 'GET', path: '/api/orders?limit=5', headers: { 'x-tenant': 'acme' } },
  { method: 'POST', path: '/api/orders', headers: { 'x-tenant': 'initech' } },
  { method: 'DELETE', path: '/admin/orders/42' },
  { method: 'GET', path: '/metrics' },
];

export interface DemoOutcome {
  readonly request: DemoRequest;
  readonly status: number;
  readonly body: string;
  /** The deciding policy and rule, from ext_authz's dynamic metadata relayed by the server. */
  readonly decidedBy: string;
}

/** The server side: mTLS from the trust domain, then ext_authz for every request. */
export class DemoServer {
  private readonly server: https.Server;
  private readonly authz: grpc.Client;

  constructor(
    tlsMaterial: TlsSource,
    private readonly options: { trustDomain: string; spiffeId: string; authzSocket: string },
  ) {
    this.authz = new grpc.Client(`unix:${options.authzSocket}`, grpc.credentials.createInsecure());
    this.server = https.createServer({ ...tlsMaterial.current(), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      void this.handle(req, res);
    });
    tlsMaterial.onChange((m: TlsMaterial) => this.server.setSecureContext(m));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const socket = req.socket as tls.TLSSocket;
    const peer = socket.getPeerCertificate();
    const principal = peerSpiffeId(peer.raw);
    // Envoy's match_typed_subject_alt_names: a URI SAN in our trust domain, or no request at all.
    if (!principal?.startsWith(`spiffe://${this.options.trustDomain}/`)) {
      res.writeHead(403).end('peer is not in the trust domain\n');
      return;
    }
    const local = socket.address() as AddressInfo;
    const request: CheckRequest = {
      attributes: {
        source: {
          address: { socket_address: { address: socket.remoteAddress ?? '', port_value: socket.remotePort ?? 0 } },
          principal,
          certificate: encodeURIComponent(certificatePem(peer.raw)),
        },
        destination: {
          address: { socket_address: { address: local.address, port_value: local.port } },
          principal: this.options.spiffeId,
        },
        request: {
          http: {
            id: randomUUID(),
            method: req.method ?? 'GET',
            path: req.url ?? '/',
            host: req.headers.host ?? '',
            scheme: 'https',
            protocol: `HTTP/${req.httpVersion}`,
            headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')])),
          },
        },
        tls_session: { sni: socket.servername || '' },
      },
    };
    let check: CheckResponse__Output;
    try {
      check = await this.check(request);
    } catch (e) {
      // Envoy with failure_mode_allow: false denies when ext_authz cannot answer.
      res.writeHead(403).end(`ext_authz unavailable: ${errorMessage(e)}\n`);
      return;
    }
    // google.protobuf.Struct is one of protobufjs' built-in types, whose fields are camelCase.
    const fields = check.dynamic_metadata?.fields ?? {};
    const policy = fields.policy?.stringValue;
    const rule = fields.rule?.numberValue;
    res.setHeader('x-meshid-decided-by', policy ? `${policy}${rule !== undefined ? ` rule ${rule}` : ''}` : 'default');
    if ((check.status?.code ?? 0) === 0) res.writeHead(200, { 'content-type': 'text/plain' }).end(`orders: ${req.method} ${req.url} ok\n`);
    else res.writeHead(403, { 'content-type': 'text/plain' }).end(check.denied_response?.body ?? 'access denied\n');
  }

  private check(request: CheckRequest): Promise<CheckResponse__Output> {
    const method = envoyProtos().authzService.Check;
    return new Promise((resolve, reject) => {
      this.authz.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        { deadline: Date.now() + 200 },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  async close(): Promise<void> {
    this.authz.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The client side: mTLS with its own SVID, checking that the server is who it should be. */
export class DemoClient {
  private agent: https.Agent;

  constructor(
    tlsMaterial: TlsSource,
    private readonly options: { port: number; serverId: string },
  ) {
    this.agent = this.agentFor(tlsMaterial.current());
    // New requests use the new SVID; requests in flight finish on the old agent (no keep-alive: it holds no idle sockets).
    tlsMaterial.onChange((m) => (this.agent = this.agentFor(m)));
  }

  private agentFor(m: TlsMaterial): https.Agent {
    return new https.Agent({ ...m, keepAlive: false });
  }

  send(r: DemoRequest): Promise<DemoOutcome> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: this.options.port,
          method: r.method,
          path: r.path,
          headers: { host: 'orders.shop.svc.cluster.local', ...r.headers },
          agent: this.agent,
          servername: 'orders.shop.svc.cluster.local',
          checkServerIdentity: (_host, cert) => {
            const id = peerSpiffeId(cert.raw);
            return id === this.options.serverId ? undefined : new Error(`server is ${id ?? 'not an SVID'}, expected ${this.options.serverId}`);
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ request: r, status: res.statusCode ?? 0, body: body.trim(), decidedBy: String(res.headers['x-meshid-decided-by'] ?? '') }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

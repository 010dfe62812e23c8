/**
 * A partner gateway made of real processes: `meshid ca` and `meshid agent` (SDS and ext_authz on
 * Unix sockets), the offline `meshid ca` commands run as a user runs them, and a node:tls HTTPS
 * server standing in for the gateway Envoy: its certificate and its validation context (trusted
 * CAs and CRL) come from the agent over SDS (the project's SDS client, src/sds/client.ts), and
 * every request it accepts is checked through the agent's ext_authz with the peer's principal and
 * certificate, as Envoy's ext_authz filter sends them (include_peer_certificate). Shared by the
 * end-to-end test and bench:revocation.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { CheckResponse__Output } from '../../src/envoy/protos.js';
import { parseCertificate } from '../../src/identity/certificate.js';
import { certificatePem } from '../../src/identity/pem.js';
import { type DecodedSecret, sdsClient, streamSecret } from '../../src/sds/client.js';
import { authzClient, checkRequest, metadataOf, type AuthzClient } from '../authz/helpers/authz-client.js';
import { cleanEnv, MeshidProcess, MESHID_MAIN } from '../helpers/meshid-process.js';

export const TD = 'gateway.test';
export const GATEWAY_ID = `spiffe://${TD}/ns/edge/sa/gateway`;
const GATEWAY_TOKEN = 'dev-token-gateway-0123456789';

export interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall-clock ms from spawn to exit. */
  readonly ms: number;
}

/** Runs `meshid ARGS` as a child process to its end. */
export function meshid(args: readonly string[], onStdout?: (chunk: string) => void): Promise<Finished> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MESHID_MAIN, ...args], { env: { ...cleanEnv(), USER: 'operator-1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A command that must succeed. */
export async function meshidOk(args: readonly string[]): Promise<Finished> {
  const r = await meshid(args);
  if (r.status !== 0) throw new Error(`meshid ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}

export interface GatewayStack {
  readonly dir: string;
  readonly stateDir: string;
  readonly bundlePath: string;
  readonly ca: MeshidProcess;
  readonly agent: MeshidProcess;
  readonly sdsSocket: string;
  readonly authzSocket: string;
  /** --state-dir and --trust-domain for the offline commands. */
  readonly state: readonly string[];
  stop(): Promise<void>;
}

/** The CA and the gateway's agent as processes; policies: AuthorizationPolicy files (name: YAML). */
export async function startGatewayStack(dir: string, policies: Readonly<Record<string, string>>, agentArgs: readonly string[] = []): Promise<GatewayStack> {
  const stateDir = path.join(dir, 'ca');
  const tokens = path.join(dir, 'tokens.yaml');
  fs.writeFileSync(tokens, `tokens:\n  ${GATEWAY_TOKEN}: ${GATEWAY_ID}\n`);
  const tokenFile = path.join(dir, 'gateway.token');
  fs.writeFileSync(tokenFile, GATEWAY_TOKEN);
  const policyDir = path.join(dir, 'policies');
  fs.mkdirSync(policyDir);
  for (const [name, yaml] of Object.entries(policies)) fs.writeFileSync(path.join(policyDir, name), yaml);

  const ca = new MeshidProcess(['ca', '--listen=127.0.0.1:0', `--trust-domain=${TD}`, `--state-dir=${stateDir}`, `--static-tokens=${tokens}`]);
  let agent: MeshidProcess | undefined;
  const stop = async () => {
    await agent?.stop();
    await ca.stop();
  };
  try {
    const listening = await ca.waitFor('CA listening', (l) => l.event === 'listening', { timeoutMs: 20_000 });
    const sdsSocket = path.join(dir, 'sds.sock');
    const authzSocket = path.join(dir, 'authz.sock');
    agent = new MeshidProcess([
      'agent',
      `--ca-address=${String(listening.address)}`,
      `--ca-bundle=${String(listening.bundle)}`,
      `--token-file=${tokenFile}`,
      `--trust-domain=${TD}`,
      `--spiffe-id=${GATEWAY_ID}`,
      `--sds-socket=${sdsSocket}`,
      `--authz-socket=${authzSocket}`,
      `--policy-dir=${policyDir}`,
      '--admin-listen=127.0.0.1:0',
      ...agentArgs,
    ]);
    const a = agent;
    await a.waitFor('agent started', (l) => l.msg === `agent started (pid ${a.pid})`, { timeoutMs: 20_000 });
    await a.waitFor('the first CRL', (l) => l.event === 'crl_updated', { timeoutMs: 20_000 });
    return { dir, stateDir, bundlePath: String(listening.bundle), ca, agent: a, sdsSocket, authzSocket, state: ['--state-dir', stateDir, '--trust-domain', TD], stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface GatewayLogLine {
  readonly event: 'handshake_refused' | 'request';
  readonly error?: string;
  readonly serial?: string;
  readonly status?: number;
  readonly reason?: string;
}

/** The TLS material the gateway holds, from SDS. */
interface Material {
  cert?: { chain: string; key: string; version: string };
  roots?: { ca: string; crl?: string; version: string };
}

/**
 * The gateway Envoy's stand-in: HTTPS with client certificates required, its certificate and its
 * validation context (trusted CAs and CRL) from SDS, re-applied to new connections on every push
 * (as Envoy does). A client certificate that does not verify (revoked, expired, unknown CA) ends
 * the connection before any request, as Node's rejectUnauthorized does, and is logged. Every
 * request is checked through ext_authz; a deny is answered with its HTTP status and reason.
 */
export class Gateway {
  readonly log: GatewayLogLine[] = [];
  private readonly server: https.Server;
  private readonly authz: AuthzClient;
  private readonly sds;
  private readonly streams: Array<{ cancel(): void }> = [];
  private readonly material: Material = {};
  private applied: { cert?: string; roots?: string } = {};
  private readonly waiters = new Set<() => void>();
  port = 0;

  constructor(stack: GatewayStack) {
    this.authz = authzClient(`unix:${stack.authzSocket}`);
    this.sds = sdsClient(stack.sdsSocket);
    this.server = https.createServer({ requestCert: true, rejectUnauthorized: false }, (req, res) => void this.handle(req, res));
    this.server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.authorized) return;
      const peer = socket.getPeerX509Certificate();
      this.log.push({ event: 'handshake_refused', error: String(socket.authorizationError), ...(peer ? { serial: peer.serialNumber.toLowerCase() } : {}) });
      socket.destroy();
    });
    const node = { id: 'gateway~10.0.0.1~gateway.edge~edge.svc.cluster.local', cluster: 'gateway' };
    const watch = (name: string, apply: (s: DecodedSecret, version: string) => void) =>
      this.streams.push(
        streamSecret(this.sds, name, node, {
          accepted: ({ secret, version }) => {
            apply(secret, version);
            this.reapply();
          },
          rejected: () => {},
          ended: () => {},
        }),
      );
    watch('default', (s, version) => {
      if (s.tlsCertificate) this.material.cert = { chain: s.tlsCertificate.certificateChain, key: s.tlsCertificate.privateKey, version };
    });
    watch('ROOTCA', (s, version) => {
      if (s.validationContext) this.material.roots = { ca: s.validationContext.trustedCa, ...(s.validationContext.crl ? { crl: s.validationContext.crl } : {}), version };
    });
  }

  /** Listens once the certificate and validation context have arrived over SDS. */
  async listen(): Promise<void> {
    await this.until(() => this.applied.cert !== undefined && this.applied.roots !== undefined, 20_000, 'the gateway TLS material over SDS');
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** The ROOTCA version in force for new connections. */
  rootsVersion(): string | undefined {
    return this.applied.roots;
  }

  crlPem(): string | undefined {
    return this.material.roots?.crl;
  }

  /** Resolves when cond holds after an SDS push (or now). */
  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.cancel();
    this.sds.close();
    this.authz.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private reapply(): void {
    const { cert, roots } = this.material;
    if (!cert || !roots) return;
    // New connections get the new context; open ones keep theirs (Envoy behaves the same way).
    this.server.setSecureContext({ cert: cert.chain, key: cert.key, ca: roots.ca, ...(roots.crl ? { crl: roots.crl } : {}) });
    this.applied = { cert: cert.version, roots: roots.version };
    for (const w of [...this.waiters]) w();
  }

  private async handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const socket = req.socket as TLSSocket;
    // A refused handshake's socket is being destroyed ('secureConnection'); nothing reaches ext_authz from it.
    if (!socket.authorized) {
      socket.destroy();
      return;
    }
    const raw = socket.getPeerCertificate(false)?.raw;
    const pem = raw ? certificatePem(raw) : undefined;
    const uri = raw ? parseCertificate(raw).sans.find((n) => n.type === 'uri')?.value : undefined;
    let answer: CheckResponse__Output;
    try {
      answer = await this.authz.check(checkRequest({ ...(uri ? { principal: uri } : {}), ...(pem ? { certificate: encodeURIComponent(pem) } : {}), method: req.method ?? 'GET', path: req.url ?? '/', host: 'api.gateway.test' }));
    } catch (e) {
      res.writeHead(403).end(`ext_authz failed: ${(e as Error).message}\n`); // failure_mode_allow false
      return;
    }
    const meta = metadataOf(answer);
    const allowed = (answer.status?.code ?? 0) === 0;
    const status = allowed ? 200 : Number(answer.denied_response?.status?.code === 'Unauthorized' ? 401 : 403);
    this.log.push({ event: 'request', status, reason: String(meta.reason), ...(raw ? { serial: parseCertificate(raw).serial } : {}) });
    const body = allowed ? 'ok\n' : `denied: ${String(meta.reason)}\n`;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
  }
}

/**
 * `openssl s_client` as a partner's client: one TLS connection (client certificate, the CA
 * bundle to verify the gateway, verification errors fatal), kept open, HTTP/1.1 requests written
 * to it one at a time.
 */
export class PartnerConnection {
  private out = '';
  stderr = '';
  private closed = false;
  private readonly child;
  private readonly changes = new Set<() => void>();

  constructor(port: number, o: { cert: string; key: string; caFile: string }) {
    this.child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', o.cert, '-key', o.key, '-CAfile', o.caFile, '-verify_return_error', '-quiet'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (d: Buffer) => {
      this.out += d.toString('latin1');
      this.notify();
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  /** Sends GET path; resolves with the response's status, or 'closed' when the server ended the connection first. */
  async get(urlPath: string, timeoutMs = 10_000): Promise<{ status: number; body: string } | 'closed'> {
    this.out = '';
    if (!this.closed) this.child.stdin.write(`GET ${urlPath} HTTP/1.1\r\nHost: api.gateway.test\r\n\r\n`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.changes.delete(check);
        reject(new Error(`no answer to GET ${urlPath} within ${timeoutMs} ms (got ${JSON.stringify(this.out)})`));
      }, timeoutMs);
      const check = () => {
        const response = parseResponse(this.out);
        if (!response && !this.closed) return;
        clearTimeout(timer);
        this.changes.delete(check);
        resolve(response ?? 'closed');
      };
      this.changes.add(check);
      check();
    });
  }

  isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (!this.closed) this.child.kill('SIGKILL');
  }

  private notify(): void {
    for (const c of [...this.changes]) c();
  }
}

function parseResponse(text: string): { status: number; body: string } | undefined {
  const head = text.indexOf('\r\n\r\n');
  if (head < 0) return undefined;
  const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
  const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, head));
  if (!status || !length) return undefined;
  const body = text.slice(head + 4);
  if (body.length < Number(length[1])) return undefined;
  return { status: Number(status[1]), body: body.slice(0, Number(length[1])) };
}

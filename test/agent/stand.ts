/**
 * The agent end to end, in-process: the real reference CA (startCa, temp state dir, static tokens)
 * and a real agent (startAgent, configured from flags as `meshid agent` is), sharing one FakeClock.
 *
 * The clock starts at the wall clock's now. OpenSSL checks certificate dates against the real wall
 * clock in every TLS handshake (the mTLS renewal, the CA's serving certificate), and the CA
 * back-dates NotBefore by one minute: so the fake clock must never run more than a minute ahead
 * of real time. SVIDs live one minute (the CA's shortest --ttl) and the tests renew early
 * (--renew-fraction) to keep their advances to a few tens of seconds.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { CaClient } from '../../src/ca/client.js';
import { caOptions } from '../../src/ca/options.js';
import { type RunningCa, startCa } from '../../src/ca/server.js';
import { agentOptions, type RunningAgent, startAgent } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { parseCertificatesPem, type Certificate } from '../../src/identity/certificate.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { SvidManagerStatus } from '../../src/rotation/manager.js';
import { SdsClient, type SdsClientOptions } from '../helpers/sds-client.js';
import { captureLogger, eventually, type LogLine } from '../sds/support.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { tempDir } from '../helpers/tmp.js';

export { eventually, type LogLine };

export const TD = 'example.org';
export const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
export const FRONTEND = `spiffe://${TD}/ns/shop/sa/frontend`;
export const ORDERS_TOKEN = 'e2e-token-orders-0123456789';
export const FRONTEND_TOKEN = 'e2e-token-frontend-0123456789';
export const SVID_TTL_MS = 60_000;
/** Real time allowed for the CA's graceful shutdown, and its grace period on the injected clock (src/ca/server.ts). */
const CA_SHUTDOWN_LIMIT_MS = 5_000;
const CA_SHUTDOWN_GRACE_MS = 5_000;

/** The orders workload's policies: no admin API for anyone; the frontend may read orders. */
export const SHOP_POLICIES: Readonly<Record<string, string>> = {
  '10-deny-admin.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin", "/admin/*"] } }]
`,
  '20-allow-frontend.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-frontend, namespace: shop }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/api/orders", "/api/orders/*"] } }]
`,
};

export interface StandOptions {
  /** The CA listens when the agent starts (default true); false: its state exists, its port is known, it is down. */
  readonly caUp?: boolean;
  /** The token file exists when the agent starts (default true). */
  readonly tokenPresent?: boolean;
  /** --renew-fraction (default 0.5); jitter is 0 so renewal times are exact. */
  readonly renewFraction?: number;
  /** ext_authz on a socket, with these AuthorizationPolicy files (name: YAML) in --policy-dir. */
  readonly policies?: Readonly<Record<string, string>>;
  /** Long-poll the CA for its CRL (default false: --crl-source off, so SDS pushes follow rotations only). */
  readonly crl?: boolean;
  /** More agent flags (given the stand's directory), e.g. --workload-api-socket. */
  readonly agentArgs?: (dir: string) => readonly string[];
}

type CapturedLogger = ReturnType<typeof captureLogger>;

export interface AttemptOutcome {
  readonly ok: boolean;
  /** Fake time at which the attempt started. */
  readonly at: number;
  readonly status: SvidManagerStatus;
}

export class Stand {
  ca: RunningCa | undefined;
  private readonly clients: SdsClient[] = [];

  private constructor(
    readonly clock: FakeClock,
    private readonly caLogger: CapturedLogger,
    private readonly agentLogger: CapturedLogger,
    readonly dir: string,
    readonly caPort: number,
    readonly tokenFile: string,
    readonly agent: RunningAgent,
  ) {}

  get policyDir(): string {
    return path.join(this.dir, 'policies');
  }

  static async start(t: ExecutionContext, o: StandOptions = {}): Promise<Stand> {
    const dir = tempDir(t, 'meshid-e2e-');
    const clock = new FakeClock(Date.now());
    const tokensFile = path.join(dir, 'tokens.yaml');
    fs.writeFileSync(tokensFile, `tokens:\n  ${ORDERS_TOKEN}: ${ORDERS}\n  ${FRONTEND_TOKEN}: ${FRONTEND}\n`);
    const tokenFile = path.join(dir, 'orders.token');
    if (o.tokenPresent !== false) fs.writeFileSync(tokenFile, `${ORDERS_TOKEN}\n`);

    const policyDir = path.join(dir, 'policies');
    if (o.policies) {
      fs.mkdirSync(policyDir);
      for (const [name, yaml] of Object.entries(o.policies)) fs.writeFileSync(path.join(policyDir, name), yaml);
    }

    const caLogger = captureLogger();
    // The CA's state (root, bundle.pem) and port exist before the agent starts, even when the CA is down.
    const first = await startCa(caConfig(dir, 0), { clock, logger: caLogger.logger });
    const caPort = first.port;
    if (o.caUp === false) await first.close();

    const argv = [
      `--ca-address=127.0.0.1:${caPort}`,
      `--ca-bundle=${first.bundlePath}`,
      `--token-file=${tokenFile}`,
      `--trust-domain=${TD}`,
      `--spiffe-id=${ORDERS}`,
      `--svid-ttl=${SVID_TTL_MS}ms`,
      `--renew-fraction=${o.renewFraction ?? 0.5}`,
      '--renew-jitter=0',
      `--sds-socket=${path.join(dir, 'sds.sock')}`,
      '--admin-listen=127.0.0.1:0',
      '--log-level=debug',
      ...(o.crl ? [] : ['--crl-source=off']),
      ...(o.policies ? [`--authz-socket=${path.join(dir, 'authz.sock')}`, `--policy-dir=${policyDir}`] : []),
      ...(o.agentArgs?.(dir) ?? []),
    ];
    const agentLogger = captureLogger();
    const agent = await startAgent(loadConfig(agentOptions, { argv, fileAndEnv: false }).config, { logger: agentLogger.logger, clock });
    const stand = new Stand(clock, caLogger, agentLogger, dir, caPort, tokenFile, agent);
    if (o.caUp !== false) stand.ca = first;
    t.teardown(async () => {
      for (const c of stand.clients) c.close();
      await agent.close();
      await stand.stopCa();
    });
    return stand;
  }

  /** Starts the CA again on the port the agent was given, with the same state dir (so the same root). */
  async startCa(): Promise<RunningCa> {
    if (this.ca) throw new Error('the CA is already up');
    this.ca = await startCa(caConfig(this.dir, this.caPort), { clock: this.clock, logger: this.caLogger.logger });
    return this.ca;
  }

  /**
   * Stops the CA. Its graceful shutdown waits for every connection to end, and its grace period
   * runs on the fake clock: a connection left open (a leak) would hang it, so that fails loudly.
   */
  async stopCa(): Promise<void> {
    const ca = this.ca;
    this.ca = undefined;
    if (!ca) return;
    const closed = ca.close();
    if ((await within(closed, CA_SHUTDOWN_LIMIT_MS)) === 'late') {
      await this.clock.advance(CA_SHUTDOWN_GRACE_MS); // its forced shutdown, so the process is not left holding the port
      await within(closed, 1000);
      throw new Error(`the CA did not shut down within ${CA_SHUTDOWN_LIMIT_MS} ms: a connection to it stayed open`);
    }
  }

  caLogs(): LogLine[] {
    return this.caLogger.lines();
  }

  agentLogs(): LogLine[] {
    return this.agentLogger.lines();
  }

  status(): SvidManagerStatus {
    return this.agent.manager.status();
  }

  /** Serial of the SVID the agent serves now. */
  servedVersion(): string | undefined {
    return this.agent.manager.currentSvid()?.version;
  }

  /** A new Envoy-like SDS client on the agent's socket, closed at teardown. */
  sdsClient(o: Partial<SdsClientOptions> = {}): SdsClient {
    const c = new SdsClient({ socketPath: this.agent.sds.socketPath, node: { id: `sidecar~10.0.0.${this.clients.length + 1}~orders.shop~shop.svc.cluster.local`, cluster: 'orders' }, ...o });
    this.clients.push(c);
    return c;
  }

  /** A certificate for another workload from the same CA, as that workload's agent would get it. */
  async issueFor(token: string, spiffeId: string): Promise<{ chainPem: string[]; privateKeyPem: string }> {
    if (!this.ca) throw new Error('the CA is down');
    return issueFromCa(this.ca.address, this.ca.bundlePem, token, spiffeId);
  }

  async admin(urlPath: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.agent.admin.url}${urlPath}`);
    return { status: res.status, body: await res.text() };
  }

  async metrics(): Promise<string> {
    const r = await this.admin('/metrics');
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
    return r.body;
  }

  /** Resolves when the request in flight, if any, has its outcome (real I/O, so real time). */
  async settled(): Promise<void> {
    await eventually(() => !this.status().requestInFlight, 10_000, 'the CA request in flight to finish');
  }

  /**
   * Moves the fake clock to the manager's next CA attempt (renewal or retry) and waits for that
   * attempt's outcome. Time moves only as far as the manager asked; the I/O is real.
   */
  async nextAttempt(): Promise<AttemptOutcome> {
    await this.settled();
    const before = this.status();
    const at = before.nextAttemptAt;
    if (at === undefined) throw new Error('no CA attempt is scheduled');
    const version = this.servedVersion();
    await this.clock.advance(Math.max(0, at - this.clock.now()));
    await eventually(
      () => {
        const s = this.status();
        return !s.requestInFlight && (s.consecutiveFailures !== before.consecutiveFailures || this.servedVersion() !== version);
      },
      10_000,
      'the CA attempt to finish',
    );
    const status = this.status();
    return { ok: status.consecutiveFailures === 0 && this.servedVersion() !== version, at, status };
  }
}

/** A certificate for spiffeId from the CA at address (a fresh key), as that workload's agent would get it. */
export async function issueFromCa(address: string, bundlePem: string, token: string, spiffeId: string): Promise<{ chainPem: string[]; privateKeyPem: string }> {
  const client = new CaClient({ address, caBundlePem: bundlePem });
  try {
    const key = generateKeyPairSync('ec-p256');
    const r = await client.createCertificate(createCsr(parseSpiffeId(spiffeId), key).pem, { kind: 'token', token });
    if (!r.ok) throw new Error(`the CA refused ${spiffeId}: ${r.message}`);
    return { chainPem: r.chainPem, privateKeyPem: privateKeyPkcs8Pem(key.privateKey) };
  } finally {
    client.close();
  }
}

/** 'late' when p has not settled after ms of real time. */
async function within(p: Promise<void>, ms: number): Promise<'done' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const outcome = await Promise.race([p.then(() => 'done' as const), late]);
  clearTimeout(timer);
  return outcome;
}

function caConfig(dir: string, port: number) {
  return loadConfig(caOptions, {
    argv: [
      `--listen=127.0.0.1:${port}`,
      `--trust-domain=${TD}`,
      `--state-dir=${path.join(dir, 'ca')}`,
      '--ttl=1m',
      `--static-tokens=${path.join(dir, 'tokens.yaml')}`,
    ],
    fileAndEnv: false,
  }).config;
}

/** The certificates of a PEM chain, leaf first. */
export function chainOf(pem: string): Certificate[] {
  return parseCertificatesPem(pem, 'served chain');
}

/**
 * A real `meshid ca` process that accepts ORDERS_TOKEN (and FRONTEND_TOKEN, for a peer's
 * certificate), a directory of the shop policies, and the flags a real `meshid agent` process
 * needs to get ORDERS's SVID from it.
 */
export async function ordersCaProcess(
  t: ExecutionContext,
  dir: string,
  policyDirName: string,
): Promise<{ ca: MeshidProcess; agentCaArgs: string[]; policyDir: string; address: string; bundlePath: string }> {
  const tokens = path.join(dir, 'tokens.yaml');
  fs.writeFileSync(tokens, `tokens:\n  ${ORDERS_TOKEN}: ${ORDERS}\n  ${FRONTEND_TOKEN}: ${FRONTEND}\n`);
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, ORDERS_TOKEN);
  const policyDir = path.join(dir, policyDirName);
  fs.mkdirSync(policyDir);
  for (const [name, yaml] of Object.entries(SHOP_POLICIES)) fs.writeFileSync(path.join(policyDir, name), yaml);
  const ca = new MeshidProcess(['ca', '--listen=127.0.0.1:0', `--trust-domain=${TD}`, `--state-dir=${path.join(dir, 'ca')}`, `--static-tokens=${tokens}`]);
  t.teardown(() => ca.stop());
  const listening = await ca.waitFor('CA listening', (l) => l.event === 'listening');
  const agentCaArgs = [`--ca-address=${String(listening.address)}`, `--ca-bundle=${String(listening.bundle)}`, `--token-file=${tokenFile}`, `--trust-domain=${TD}`, `--spiffe-id=${ORDERS}`];
  return { ca, agentCaArgs, policyDir, address: String(listening.address), bundlePath: String(listening.bundle) };
}

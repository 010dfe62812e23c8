/**
 * `meshid agent`: the per-pod daemon. This is where the components meet: the CA client feeds the
 * SVID manager, which feeds the SDS server and the ext_authz trust roots; the admin endpoint
 * reports on all of them. Nothing else in the tree wires components together.
 */
import fs from 'node:fs/promises';
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { authzOptionSpecs, authzRules } from '../authz/options.js';
import type { AuthzService } from '../authz/server.js';
import { CaClient, DEFAULT_CA_DEADLINE_MS } from '../ca/client.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt, parseHostPort } from '../config/options.js';
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { spiffeIdFromServiceAccountClaims, unverifiedJwtClaims } from '../identity/service-account.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../identity/spiffe-id.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import { type AdminServer, startAdminServer } from '../observability/admin.js';
import { createLogger, type Logger, logLevelOption } from '../observability/logger.js';
import { AgentMetrics } from './agent-metrics.js';
import { CrlWatcher } from '../rotation/crl-watcher.js';
import { SvidManager } from '../rotation/manager.js';
import { crlOptions, crlRules, rotationOptions, rotationRules } from '../rotation/options.js';
import { NamedCertificates } from '../sds/named-certs.js';
import { sdsOptions, sdsRules } from '../sds/options.js';
import { type SdsServer, startSdsServer } from '../sds/server.js';
import { fileSinkOptions, fileSinkRules, workloadApiOptions } from '../workload/options.js';
import type { WorkloadApiServer } from '../workload/server.js';
import { startupMark, startupMarks } from '../lib/startup-timing.js';
import { defineCommand } from './command.js';

export const agentOptions = {
  caAddress: opt.string('ca-address', {
    description: 'the CA (meshid ca, istiod or istio-csr): HOST:PORT of istio.v1.auth.IstioCertificateService over TLS',
    metavar: 'HOST:PORT',
    required: true,
  }),
  caBundle: opt.string('ca-bundle', { description: "PEM trust anchors for the CA's TLS certificate", metavar: 'FILE', required: true }),
  caServerName: opt.string('ca-server-name', { description: "name to verify in the CA's certificate, when it is not the host of --ca-address", metavar: 'NAME' }),
  caTimeout: opt.duration('ca-timeout', { description: 'deadline of one CA request', default: DEFAULT_CA_DEADLINE_MS, min: 100, max: 120_000 }),
  tokenFile: opt.string('token-file', {
    description: 'bearer token for the CA (a projected service-account JWT), re-read at every request since it rotates',
    metavar: 'FILE',
    required: true,
  }),
  trustDomain: opt.checked('trust-domain', { description: 'the trust domain of this workload', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
  spiffeId: opt.checked('spiffe-id', {
    description: "this workload's SPIFFE ID (default: from the token's service-account claims, spiffe://<td>/ns/<ns>/sa/<sa>)",
    metavar: 'ID',
  }, (s) => parseSpiffeId(s).uri),
  trustBundle: opt.string('trust-bundle', {
    description: "PEM roots of the trust domain (e.g. the CA's bundle.pem), watched; the only roots trusted, and issued chains must end at one of them",
    metavar: 'FILE',
  }),
  partnerCas: opt.string('partner-cas', {
    description: 'YAML mapping of partner CAs the operator trusts but does not run to partner principals (<td>/partner/<name>), watched; served over SDS as "partners" with the bundle',
    metavar: 'FILE',
  }),
  ...rotationOptions,
  ...crlOptions,
  adminListen: opt.hostPort('admin-listen', { description: 'HTTP address of /healthz, /readyz and /metrics', default: parseHostPort(DEFAULT_ADMIN_LISTEN) }),
  ...logLevelOption,
  ...sdsOptions,
  ...authzOptionSpecs,
  ...workloadApiOptions,
  ...fileSinkOptions,
};

export type AgentConfig = ConfigOf<typeof agentOptions>;

/** The agent's schema: every subsystem's rules, and the one across them. */
export const agentRules: readonly ConfigRule[] = [
  ...rotationRules,
  ...crlRules,
  ...sdsRules,
  ...authzRules,
  ...fileSinkRules,
  rule<AgentConfig>({
    keys: ['spiffeId', 'trustDomain'],
    check: (c) => (c.spiffeId !== undefined && parseSpiffeId(c.spiffeId).trustDomain !== c.trustDomain ? `${c.spiffeId} is not in the trust domain ${c.trustDomain}` : undefined),
  }),
];

export interface AgentDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
}

export interface RunningAgent {
  readonly spiffeId: SpiffeId;
  readonly manager: SvidManager;
  /** The CA's revocations in force (undefined with --crl-source off). */
  readonly crls: CrlWatcher | undefined;
  readonly sds: SdsServer;
  readonly authz: AuthzService | undefined;
  readonly workloadApi: WorkloadApiServer | undefined;
  readonly named: NamedCertificates | undefined;
  readonly admin: AdminServer;
  readonly metrics: AgentMetrics;
  ready(): boolean;
  close(): Promise<void>;
}

/** Starts every part of the agent; a startup failure throws after undoing what had started. */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  const log = logger.child({ component: 'agent' });
  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch((e: unknown) => log.warn({ error: errorMessage(e) }, 'error while closing'));
  };
  try {
    // Before anything binds: a bad combination must not leave a socket behind (agentRules refuse it earlier still).
    // ext_authz, the Workload API and the SVID files load their modules only when configured: an
    // agent serving SDS alone does not pay for the policy engine, YAML, Redis or JWT code.
    const authzModule = config.authzSocket || config.authzListen ? await import('../authz/server.js') : undefined;
    const authzConfig = authzModule?.authzServiceConfig(config);
    const caBundlePem = await readStartupFile(config.caBundle, 'caBundle');
    parseCertificatesPem(caBundlePem, `--ca-bundle ${config.caBundle}`);
    const readToken = async () => (await fs.readFile(config.tokenFile, 'utf8')).trim();
    const spiffeId = await resolveSpiffeId(config, readToken);
    const metrics = new AgentMetrics(clock);

    const client = new CaClient({
      address: config.caAddress,
      caBundlePem,
      deadlineMs: config.caTimeout,
      ...(config.caServerName ? { serverName: config.caServerName } : {}),
    });
    closers.push(() => client.close());

    const manager = new SvidManager({
      spiffeId,
      signer: client,
      token: readToken,
      clock,
      logger,
      keyAlgorithm: config.keyAlgorithm,
      ...(config.svidTtl ? { ttlSeconds: Math.round(config.svidTtl / 1000) } : {}),
      policy: { renewal: { renewFraction: config.renewFraction, jitterFraction: config.renewJitter } },
      metrics: metrics.svidHooks(),
      ...(config.trustBundle ? { configuredRootsPem: await readStartupFile(config.trustBundle, 'trustBundle') } : {}),
    });
    closers.push(() => manager.stop());
    // The first SVID is the long pole of start-up (a key, then a CA round trip): ask for it now and
    // bind the servers while it is on its way. Nothing is lost by asking early: the SDS catalog
    // and the admin endpoint read the manager's current state when they start.
    manager.start();
    if (config.trustBundle) closers.push(await watchTrustBundle(config.trustBundle, manager, clock, log));

    const crls = config.crlSource === 'off' ? undefined : startCrlWatcher(config, { manager, client, readToken, clock, logger });
    if (crls) {
      closers.push(() => crls.stop());
      if (config.crlSource === 'file') closers.push(await watchCrlFile(config.crlFile!, crls, clock, log));
    }

    const partnerCas = config.partnerCas
      ? await (await import('../authz/partner-cas-file.js')).startPartnerCas({ file: config.partnerCas, trustDomain: spiffeId.trustDomain, clock, logger, onReload: (result) => metrics.partnerCasReloads.inc({ result }) })
      : undefined;
    if (partnerCas) closers.push(() => partnerCas.close());

    let named: NamedCertificates | undefined;
    if (config.namedCert.length > 0) {
      named = new NamedCertificates(config.namedCert, { clock, logger, metrics: metrics.sdsHooks() });
      closers.push(() => named?.stop());
      await named.start();
    }

    const sds = await startSdsServer(config, { source: manager, partners: partnerCas, logger, clock, metrics: metrics.sdsHooks(), ...(named ? { named } : {}) });
    closers.push(() => sds.close());
    startupMark('sds_listening');

    const authz = authzConfig && authzModule
      ? await authzModule.startAuthzService(authzConfig, {
          logger,
          clock,
          trustDomain: spiffeId.trustDomain,
          trustRoots: () => manager.trustRoots(),
          ...(partnerCas ? { partners: () => partnerCas.current() } : {}),
          metrics: metrics.authzHooks(),
          ...(crls ? { revocations: crls } : {}),
        })
      : undefined;
    if (authz) closers.push(() => authz.close());

    let workloadApi: WorkloadApiServer | undefined;
    if (config.workloadApiSocket) {
      const [{ JwtSvids }, { startWorkloadApiServer }] = await Promise.all([import('../workload/jwt-svids.js'), import('../workload/server.js')]);
      const jwt = new JwtSvids({ signer: client, source: manager, clock, logger, caAddress: config.caAddress });
      closers.push(() => jwt.stop());
      workloadApi = await startWorkloadApiServer({ workloadApiSocket: config.workloadApiSocket, workloadApiSocketMode: config.workloadApiSocketMode }, { source: manager, jwt, logger, clock });
      closers.push(() => workloadApi?.close());
    }

    if (config.svidDir) {
      const { SvidFileSink } = await import('../workload/file-sink.js');
      const sink = new SvidFileSink(
        { dir: config.svidDir, ...(config.svidHook ? { hook: config.svidHook } : {}), ...(config.svidSignal && config.svidPidFile ? { signal: config.svidSignal, pidFile: config.svidPidFile } : {}) },
        { source: manager, clock, logger, ...(named ? { named } : {}) },
      );
      await sink.start();
      closers.push(() => sink.stop());
    }

    const checks = () => ({ svid: manager.ready(), sds: sds.serving(), ...(authz ? { authz_policies: authz.ready() } : {}) });
    const ready = () => Object.values(checks()).every(Boolean);
    const admin = await startAdminServer(config.adminListen, checks, metrics);
    closers.push(() => admin.close());
    startupMark('admin_listening');

    log.info(
      {
        spiffeId: spiffeId.uri,
        ca: config.caAddress,
        sdsSocket: sds.socketPath,
        ...(authz?.socketPath ? { authzSocket: authz.socketPath } : {}),
        ...(authz?.tcpPort !== undefined ? { authzPort: authz.tcpPort } : {}),
        ...(workloadApi ? { workloadApiSocket: workloadApi.socketPath } : {}),
        admin: admin.url,
        pid: process.pid,
      },
      `agent started (pid ${process.pid})`,
    );
    // Where start-up time went (bench:start reads this line): after the first SVID, or now if it came first.
    manager.firstSvid().then(
      () => log.debug({ event: 'startup_timing', marks: startupMarks() }, 'start-up milestones (epoch ms)'),
      () => {},
    );
    return { spiffeId, manager, crls, sds, authz, workloadApi, named, admin, metrics, ready, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

async function readStartupFile(path: string, key: keyof AgentConfig): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new MeshidError('input_unreadable', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`, { key });
  }
}

/** --spiffe-id, or the identity the token's service-account claims stand for. */
async function resolveSpiffeId(config: AgentConfig, readToken: () => Promise<string>): Promise<SpiffeId> {
  // agentRules have checked that it is in --trust-domain.
  if (config.spiffeId) return parseSpiffeId(config.spiffeId);
  let token: string;
  try {
    token = await readToken();
  } catch (e) {
    throw new MeshidError('input_unreadable', `cannot read ${config.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`, { key: 'tokenFile' });
  }
  const claims = unverifiedJwtClaims(token);
  if (!claims) {
    throw new MeshidError('config_invalid', `not given, and the token in ${config.tokenFile} is not a JWT to read it from; pass --spiffe-id`, { key: 'spiffeId' });
  }
  try {
    return spiffeIdFromServiceAccountClaims(claims, config.trustDomain);
  } catch (e) {
    throw new MeshidError('config_invalid', `not given, and the token does not say it: ${errorMessage(e)}; pass --spiffe-id`, { key: 'spiffeId' });
  }
}

async function watchTrustBundle(path: string, manager: SvidManager, clock: Clock, log: Logger): Promise<() => Promise<void>> {
  const reload = async () => {
    try {
      manager.setConfiguredRoots(await fs.readFile(path, 'utf8'));
    } catch (e) {
      log.error({ file: path, error: errorMessage(e) }, 'trust bundle file unusable; keeping the previous roots');
    }
  };
  const watch: PathWatch = watchPaths([path], () => void reload(), { clock, onError: (e) => log.warn({ error: errorMessage(e) }, 'trust bundle watch error') });
  await watch.ready;
  return () => watch.close();
}

/**
 * The CRL watcher: verifies each CRL against the trust bundle and the chain above our SVID, hands
 * the one in force to the manager (SDS validation contexts, and a renewal if our own SVID is
 * revoked) and, with --crl-source ca, long-polls the CA for it.
 */
function startCrlWatcher(
  config: AgentConfig,
  deps: { manager: SvidManager; client: CaClient; readToken: () => Promise<string>; clock: Clock; logger: Logger },
): CrlWatcher {
  const { manager } = deps;
  const issuers = (): Certificate[] => {
    const svid = manager.currentSvid();
    const above = svid ? parseCertificatesPem(svid.certChainPem, 'the SVID chain').slice(1) : [];
    return [...manager.trustRoots(), ...above];
  };
  const crls: CrlWatcher = new CrlWatcher({
    clock: deps.clock,
    logger: deps.logger,
    issuers,
    onChange: (crl) => manager.applyRevocations(crl && { pem: crl.pem, crlNumber: crl.crlNumber }, (serial) => crls.isRevokedSerial(serial)),
    ...(config.crlSource === 'ca'
      ? {
          fetcher: deps.client,
          waitMs: config.crlWait,
          auth: async (preferToken: boolean) => {
            const svid = manager.currentSvid();
            if (svid && !preferToken) return { kind: 'mtls' as const, certChainPem: svid.certChainPem, privateKeyPem: svid.privateKeyPem };
            try {
              return { kind: 'token' as const, token: await deps.readToken() };
            } catch {
              return undefined;
            }
          },
        }
      : {}),
  });
  // A CRL that arrived before the bundle that verifies it is tried again when the bundle or SVID changes.
  manager.subscribe(() => crls.recheck());
  crls.start();
  return crls;
}

async function watchCrlFile(path: string, crls: CrlWatcher, clock: Clock, log: Logger): Promise<() => Promise<void>> {
  const reload = async () => {
    try {
      crls.offer(await fs.readFile(path), path);
    } catch (e) {
      log.error({ file: path, error: errorMessage(e) }, 'CRL file unreadable; keeping the CRL held');
    }
  };
  await reload();
  const watch: PathWatch = watchPaths([path], () => void reload(), { clock, debounceMs: 20, resyncMs: 60_000, onError: (e) => log.warn({ error: errorMessage(e) }, 'CRL file watch error') });
  await watch.ready;
  return () => watch.close();
}

/**
 * Resolves on SIGINT or SIGTERM; SIGUSR1 renews the SVID at once. Installed before start-up, so
 * that a SIGTERM while the agent starts is a clean shutdown too (sockets removed), not Node's
 * default exit; manager may then be a getter for the manager once it exists.
 */
export function untilShutdown(log: Logger, manager?: SvidManager | (() => SvidManager | undefined)): Promise<NodeJS.Signals> {
  const onUsr1 = () => {
    const m = typeof manager === 'function' ? manager() : manager;
    const started = m?.renewNow() ?? false;
    log.info({ event: 'signal', signal: 'SIGUSR1' }, started ? 'SIGUSR1: renewing the SVID now' : 'SIGUSR1: a renewal is already under way');
  };
  process.on('SIGUSR1', onUsr1);
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals) => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      process.off('SIGUSR1', onUsr1);
      resolve(signal);
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}

/** grpc-js writes its own errors to stderr; ours already say what failed, so keep its lines at debug. */
export function quietGrpcLogs(logger: Logger): void {
  grpc.setLogger({ error: (...args: unknown[]) => logger.debug({ component: 'grpc' }, format(...args)), info: () => {}, debug: () => {} } as Console);
}

export default defineCommand({
  name: 'agent',
  summary: 'the per-pod agent: a local key and an X.509-SVID from the CA, served to Envoy over SDS, with ext_authz',
  details: `
The agent generates the workload's private key in memory, obtains an X.509-SVID for it from the CA,
serves certificate ("default") and trust bundle ("ROOTCA") to Envoy over SDS on --sds-socket, and
renews well before expiry with a fresh key. --named-cert NAME=CERT,KEY adds a certificate and key
of the operator's (watched), served as "named:NAME" and written to --svid-dir. With --authz-socket or --authz-listen and --policy-dir
it also answers Envoy ext_authz checks under Istio AuthorizationPolicy rules.
Send SIGUSR1 to renew the SVID at once.`,
  options: agentOptions,
  rules: agentRules,
  async run({ config }) {
    startupMark('config_loaded');
    const logger = createLogger({ level: config.logLevel });
    quietGrpcLogs(logger);
    let agent: RunningAgent | undefined;
    const shutdown = untilShutdown(logger, () => agent?.manager);
    agent = await startAgent(config, { logger });
    const signal = await shutdown;
    logger.info({ event: 'signal', signal }, `${signal}: shutting down`);
    await agent.close();
    return 0;
  },
});

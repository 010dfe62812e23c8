/**
 * `meshid dev`: the reference CA and an agent in one process, on embedded defaults, so a newcomer
 * sees meshid work with one command. State lives in ./.meshid (git-ignored). With --demo, a second
 * agent and two workload stand-ins show the whole loop: identities issued and rotated, used for
 * mTLS, and requests allowed and denied by the sample policies, with the deciding policy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startCa } from '../ca/server.js';
import { caOptions, caRules } from '../ca/options.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_AUTHZ_SOCKET, DEFAULT_SDS_SOCKET, DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { loadConfig, rule } from '../config/load.js';
import { type ConfigOf, formatHostPort, opt, parseHostPort } from '../config/options.js';
import { DemoClient, DEMO_ROUND, type DemoOutcome, DemoServer } from '../demo/demo.js';
import { SdsTls } from '../demo/sds-tls.js';
import { DEV_ISSUER, DevTokenIssuer } from '../demo/dev-issuer.js';
import { DEFAULT_ACCESS_TTL_MS, DEV_ACCESS_AUDIENCE, startTokenEndpoint } from '../demo/token-endpoint.js';
import { parseTrustDomain, workloadSpiffeId } from '../identity/spiffe-id.js';
import { systemClock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { packagePath } from '../lib/package-path.js';
import { createLogger, type Logger, logLevelOption } from '../observability/logger.js';
import { socketAnswers } from '../lib/unix-socket.js';
import { agentOptions, agentRules, quietGrpcLogs, type RunningAgent, startAgent, untilShutdown } from './agent.js';
import { defineCommand } from './command.js';

const devOptions = {
  stateDir: opt.string('state-dir', { description: 'where dev mode keeps the CA, tokens, sockets and the rendered Envoy bootstrap', metavar: 'DIR', default: '.meshid' }),
  trustDomain: opt.checked('trust-domain', { description: 'trust domain of the dev CA', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
  ttl: opt.duration('ttl', { description: 'SVID lifetime; short, so a rotation shows within a minute', default: 60_000, min: 60_000 }),
  policyDir: opt.string('policy-dir', { description: 'AuthorizationPolicy directory for the agent', metavar: 'DIR', default: packagePath('deploy', 'policies') }),
  adminListen: opt.hostPort('admin-listen', { description: "the agent's /healthz, /readyz and /metrics", default: parseHostPort(DEFAULT_ADMIN_LISTEN) }),
  demo: opt.bool('demo', { description: 'add two workloads that talk mTLS through allowed and denied paths', default: false }),
  demoInterval: opt.duration('demo-interval', { description: 'pause between two rounds of demo requests', default: 10_000, min: 100 }),
  ...logLevelOption,
};

const NAMESPACE = 'shop';

export default defineCommand({
  name: 'dev',
  summary: 'run the reference CA and an agent together on embedded defaults (state in ./.meshid)',
  details: `
Starts the reference CA and the agent for spiffe://<td>/ns/shop/sa/orders: SDS and ext_authz on
Unix sockets under <state-dir>/run, the admin port, and the sample policies from deploy/policies.
Also the dev token endpoint (HTTPS on a free loopback port: mTLS with an SVID of the CA, answered
with a certificate-bound JWT the agent verifies with <state-dir>/token-issuer/jwt-rules.yaml); the
CA also accepts \`meshid dev token --sa NS/SA\` tokens from the same state directory.
Prints where everything is and the Envoy bootstrap to use, then one line per rotation and per
authorization decision. Ctrl-C stops everything and removes the sockets. SIGUSR1 rotates now.`,
  options: devOptions,
  rules: [rule<ConfigOf<typeof devOptions>>({ keys: ['demoInterval'], warning: true, check: (c, given) => (given('demoInterval') && !c.demo ? 'has no effect without --demo' : undefined) })],
  async run({ config }) {
    const logger = createLogger({ level: config.logLevel });
    quietGrpcLogs(logger);
    const log = logger.child({ component: 'dev' });
    const state = path.resolve(config.stateDir);
    const run = path.join(state, 'run');
    // Created 0700; an existing directory (--state-dir .) keeps its mode: the files are 0600.
    await fs.mkdir(run, { recursive: true, mode: 0o700 });

    const sdsSocket = path.join(run, 'sds.sock');
    const authzSocket = path.join(run, 'authz.sock');
    // Checked before anything is written: a second start would otherwise replace the tokens the running one still uses.
    if (await socketAnswers(sdsSocket, systemClock)) {
      throw new MeshidError('dev_state_in_use', `${state} is in use by another meshid dev (its SDS socket ${sdsSocket} answers); stop it or pass another --state-dir`);
    }

    const closers: Array<() => Promise<void> | void> = [];
    const closeAll = async () => {
      for (const close of closers.reverse()) await Promise.resolve(close()).catch((e: unknown) => log.warn({ error: errorMessage(e) }, 'error while stopping'));
    };
    try {
      const ordersId = workloadSpiffeId(config.trustDomain, NAMESPACE, 'orders');
      const frontendId = workloadSpiffeId(config.trustDomain, NAMESPACE, 'frontend');
      const tokens = await writeDevTokens(state, { orders: ordersId.uri, ...(config.demo ? { frontend: frontendId.uri } : {}) });
      // The dev token issuer: the CA takes its service-account tokens (meshid dev token --sa), the
      // orders agent its certificate-bound access tokens (the token endpoint, meshid dev token --bind-cert).
      const issuer = await DevTokenIssuer.open(state);
      const jwtRules = issuer.writeJwtRules([DEV_ACCESS_AUDIENCE]);

      const caConfig = loadConfig(caOptions, {
        argv: [
          '--listen=127.0.0.1:0',
          `--trust-domain=${config.trustDomain}`,
          `--state-dir=${path.join(state, 'ca')}`,
          `--ttl=${config.ttl}ms`,
          `--max-ttl=${Math.max(config.ttl, 86_400_000)}ms`,
          `--static-tokens=${tokens.file}`,
          `--jwt-keys=${issuer.files.jwks}`,
          `--jwt-issuer=${DEV_ISSUER}`,
        ],
        fileAndEnv: false,
        rules: caRules,
      }).config;
      const ca = await startCa(caConfig, { logger });
      closers.push(() => ca.close());
      const tokenEndpoint = await startTokenEndpoint({
        issuer,
        bundlePem: ca.bundlePem,
        trustDomain: config.trustDomain,
        listen: { host: '127.0.0.1', port: 0 },
        audiences: [DEV_ACCESS_AUDIENCE],
        ttlMs: DEFAULT_ACCESS_TTL_MS,
        servingCertificateFile: issuer.files.endpointCertificate,
        clock: systemClock,
        logger,
      });
      closers.push(() => tokenEndpoint.close());

      const agentFlags = (name: string, id: string, extra: string[]) => [
        `--ca-address=127.0.0.1:${ca.port}`,
        `--ca-bundle=${ca.bundlePath}`,
        `--trust-bundle=${ca.bundlePath}`,
        `--token-file=${tokens.files[name]!}`,
        `--trust-domain=${config.trustDomain}`,
        `--spiffe-id=${id}`,
        `--log-level=${config.logLevel}`,
        ...extra,
      ];
      const orders = await startAgent(
        loadConfig(agentOptions, {
          argv: agentFlags('orders', ordersId.uri, [
            `--sds-socket=${sdsSocket}`,
            `--authz-socket=${authzSocket}`,
            `--policy-dir=${config.policyDir}`,
            `--jwt-rules=${jwtRules}`,
            `--admin-listen=${formatHostPort(config.adminListen)}`,
          ]),
          fileAndEnv: false,
          rules: agentRules,
        }).config,
        { logger },
      );
      closers.push(() => orders.close());
      reportRotations(orders, log);
      const svid = await orders.manager.firstSvid();

      const bootstrap = await renderEnvoyBootstrap(state, sdsSocket, authzSocket, config.trustDomain);
      log.info(
        {
          event: 'dev_ready',
          spiffeId: ordersId.uri,
          expiresAt: new Date(svid.expiresAt).toISOString(),
          ca: `127.0.0.1:${ca.port}`,
          bundle: ca.bundlePath,
          sdsSocket,
          authzSocket,
          admin: orders.admin.url,
          policyDir: config.policyDir,
          envoyBootstrap: bootstrap,
          tokenEndpoint: `${tokenEndpoint.url}/token`,
          tokenEndpointCertificate: issuer.files.endpointCertificate,
          jwtRules,
          pid: process.pid,
        },
        `meshid dev is running (pid ${process.pid}; kill -USR1 ${process.pid} rotates now). Identity ${ordersId.uri} (expires ${new Date(svid.expiresAt).toISOString()}); ` +
          `SDS ${sdsSocket}; ext_authz ${authzSocket}; admin ${orders.admin.url}; CA 127.0.0.1:${ca.port}; ` +
          `bound tokens (mTLS with an SVID) from ${tokenEndpoint.url}/token. ` +
          `Run Envoy with: envoy -c ${bootstrap}`,
      );

      if (config.demo) await startDemo({ config, ca, run, agentFlags, frontendId: frontendId.uri, ordersId: ordersId.uri, authzSocket, sdsSocket, logger, log, closers });

      const signal = await untilShutdown(log, orders.manager);
      log.info({ event: 'signal', signal }, `${signal}: shutting down`);
    } finally {
      await closeAll();
    }
    log.info({ event: 'stopped' }, 'stopped; sockets removed');
    return 0;
  },
});

/** Random dev-only bearer tokens for the static-token file, one per workload, files 0600. */
async function writeDevTokens(state: string, ids: Record<string, string>): Promise<{ file: string; files: Record<string, string> }> {
  const entries: string[] = [];
  const files: Record<string, string> = {};
  for (const [name, id] of Object.entries(ids)) {
    const token = `dev-${crypto.randomBytes(24).toString('base64url')}`;
    entries.push(`  ${token}: ${id}`);
    files[name] = path.join(state, `${name}.token`);
    await fs.writeFile(files[name]!, `${token}\n`, { mode: 0o600 });
  }
  const file = path.join(state, 'tokens.yaml');
  await fs.writeFile(file, `# meshid dev: development-only static tokens, regenerated at each start\ntokens:\n${entries.join('\n')}\n`, { mode: 0o600 });
  return { file, files };
}

/** deploy/envoy/envoy.yaml with the dev socket paths and trust domain, for `envoy -c`. */
export async function renderEnvoyBootstrap(state: string, sdsSocket: string, authzSocket: string, trustDomain: string): Promise<string> {
  const template = await fs.readFile(packagePath('deploy', 'envoy', 'envoy.yaml'), 'utf8');
  const out = path.join(state, 'envoy.yaml');
  const rendered = template
    .replaceAll(DEFAULT_SDS_SOCKET, sdsSocket)
    .replaceAll(DEFAULT_AUTHZ_SOCKET, authzSocket)
    // Only SPIFFE IDs: the DNS names in the template stay as they are.
    .replaceAll(`spiffe://${DEFAULT_TRUST_DOMAIN}/`, `spiffe://${trustDomain}/`);
  await fs.writeFile(out, rendered);
  return out;
}

function reportRotations(agent: RunningAgent, log: Logger): void {
  let last = agent.manager.currentSvid()?.version;
  agent.manager.subscribe(() => {
    const svid = agent.manager.currentSvid();
    if (!svid || svid.version === last) return;
    const first = last === undefined;
    last = svid.version;
    const fields = { spiffeId: svid.spiffeId, serial: svid.version, expiresAt: new Date(svid.expiresAt).toISOString() };
    if (first) log.info({ event: 'issued', ...fields }, `identity issued: ${svid.spiffeId}, certificate ${svid.version.slice(0, 16)}, expires ${fields.expiresAt}`);
    else log.info({ event: 'rotated', ...fields }, `rotated ${svid.spiffeId}: new key and certificate ${svid.version.slice(0, 16)}, expires ${fields.expiresAt}; pushed over SDS`);
  });
}

interface DemoContext {
  config: { trustDomain: string; demoInterval: number; logLevel: string };
  ca: { port: number };
  run: string;
  agentFlags: (name: string, id: string, extra: string[]) => string[];
  frontendId: string;
  ordersId: string;
  authzSocket: string;
  sdsSocket: string;
  logger: Logger;
  log: Logger;
  closers: Array<() => Promise<void> | void>;
}

/** A second agent for the frontend, and the two workloads; each part's stop joins ctx.closers as soon as it runs. */
async function startDemo(ctx: DemoContext): Promise<void> {
  const frontendSds = path.join(ctx.run, 'frontend-sds.sock');
  const frontend = await startAgent(
    loadConfig(agentOptions, {
      argv: ctx.agentFlags('frontend', ctx.frontendId, [`--sds-socket=${frontendSds}`, '--admin-listen=127.0.0.1:0']),
      fileAndEnv: false,
      rules: agentRules,
    }).config,
    { logger: ctx.logger },
  );
  ctx.closers.push(() => frontend.close());
  reportRotations(frontend, ctx.log);
  const ordersTls = new SdsTls(ctx.sdsSocket, { id: 'demo-orders', cluster: 'orders' });
  const frontendTls = new SdsTls(frontendSds, { id: 'demo-frontend', cluster: 'frontend' });
  ctx.closers.push(() => {
    ordersTls.close();
    frontendTls.close();
  });
  await Promise.all([ordersTls.ready(), frontendTls.ready()]);
  const server = new DemoServer(ordersTls, { trustDomain: ctx.config.trustDomain, spiffeId: ctx.ordersId, authzSocket: ctx.authzSocket });
  ctx.closers.push(() => server.close());
  const port = await server.listen();
  const client = new DemoClient(frontendTls, { port, serverId: ctx.ordersId });
  ctx.log.info({ event: 'demo_ready', frontend: ctx.frontendId, orders: ctx.ordersId, port }, `demo: ${ctx.frontendId} -> ${ctx.ordersId} on 127.0.0.1:${port}, mTLS with SDS-delivered SVIDs`);

  let stopped = false;
  const round = async () => {
    for (const r of DEMO_ROUND) {
      if (stopped) return;
      try {
        reportOutcome(ctx.log, await client.send(r));
      } catch (e) {
        ctx.log.warn({ event: 'demo_request_failed', method: r.method, path: r.path, error: errorMessage(e) }, `demo: ${r.method} ${r.path} failed: ${errorMessage(e)}`);
      }
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const loop = async () => {
    await round();
    if (!stopped) timer = setTimeout(() => void loop(), ctx.config.demoInterval);
  };
  void loop();
  ctx.closers.push(() => {
    stopped = true;
    if (timer) clearTimeout(timer);
    client.close();
  });
}

function reportOutcome(log: Logger, o: DemoOutcome): void {
  const allowed = o.status === 200;
  log.info(
    { event: 'demo_request', method: o.request.method, path: o.request.path, status: o.status, allowed, decidedBy: o.decidedBy, body: o.body },
    `demo: frontend ${o.request.method} ${o.request.path} -> ${o.status} ${allowed ? 'allowed' : 'denied'} by ${o.decidedBy}${allowed ? '' : ` (${o.body})`}`,
  );
}

/**
 * The ext_authz gRPC service (envoy.service.auth.v3.Authorization/Check) on a Unix socket and/or
 * TCP. The handler only converts: CheckRequest to engine input, decision to CheckResponse. The RPC
 * succeeds for every decision, because Envoy treats a failed RPC as an error (and, with
 * failure_mode_allow, might let the request through): a malformed request, a missing policy set
 * or an internal error are all answered with a deny that names the reason.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { HostPort } from '../config/options.js';
import { formatHostPort } from '../config/options.js';
import { type CheckRequest, envoyProtos } from '../envoy/protos.js';
import type { Certificate } from '../identity/certificate.js';
import { verifyX509Svid } from '../identity/svid-verify.js';
import type { Clock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { bindServer, serverOptions, shutdownGracefully } from '../lib/grpc-server.js';
import { type BoundSocket, listenOnUnixSocket } from '../lib/unix-socket.js';
import type { Logger } from '../observability/logger.js';
import type { CertificateCheck } from './check-request.js';
import { encodeCheckResponse } from './check-response.js';
import { type CheckOutcome, decideCheckRequestWithTokens, type RequestAuthOptions } from './decide.js';
import { type JwtRule, parseJwtRules } from './jwt-rules.js';
import { RequestAuthenticator } from './jwt-verify.js';
import { DecisionLog } from './decision-log.js';
import { type Decision, denyDecision, withQuota } from './engine.js';
import { type AuthzMetrics, noopAuthzMetrics, type RateLimitCounter } from './metrics.js';
import type { AuthzOptions } from './options.js';
import type { GcraRate, Quota } from './rate-limit/gcra.js';
import { LocalLimiter } from './rate-limit/local-limiter.js';
import type { RedisFallback } from './rate-limit/redis-url.js';
import type { EscapedSlashes } from './paths.js';
import type { PartnerTrust } from './partner-cas.js';
import { peerCertificateChecker, type SvidVerifier } from './peer-certificate.js';
import { type PolicySource, startPolicySource } from './policy-source.js';

export interface AuthzServiceConfig {
  /** Unix socket path; a stale socket file there is replaced, a live one refused. */
  readonly socket?: string;
  /** Its file mode (default 0600). */
  readonly socketMode?: number;
  readonly listen?: HostPort;
  readonly policyDir: string;
  /** Fraction of decisions logged (default 1). */
  readonly decisionLogSample?: number;
  /** Headers whose values the decision log writes as sent (the rest are hashed). */
  readonly decisionLogHeaders?: readonly string[];
  /** Reason, policy and rule in 403 bodies (default true). */
  readonly denyDetails?: boolean;
  readonly reloadDebounceMs?: number;
  /** Periodic re-read of the policy directory (default 30 s; 0: only on file events). */
  readonly resyncMs?: number;
  /** How paths with escaped slashes are decided (default 'reject'). */
  readonly escapedSlashes?: EscapedSlashes;
  /** Istio's trustDomainAliases, applied with deps.trustDomain. */
  readonly trustDomainAliases?: readonly string[];
  /** RateLimitPolicy counters: in memory (default), or shared through Redis. */
  readonly rateLimit?: RateLimitConfig;
  /** Verify bearer tokens with these rules (--jwt-rules); absent: request principals from jwt_authn metadata only. */
  readonly jwtRules?: readonly JwtRule[];
  /** The jwt_authn metadata key holding the payload; absent: the first entry that is one. */
  readonly jwtAuthnMetadataKey?: string;
}

export interface RateLimitConfig {
  /** Most in-memory counters (default 100,000). */
  readonly maxKeys?: number;
  readonly redis?: { readonly url: string; readonly timeoutMs: number; readonly fallback: RedisFallback };
}

/** A counter store as the handler uses it; the Redis one answers asynchronously. */
interface RateLimiter {
  take(key: string, rate: GcraRate): Quota | Promise<Quota>;
  close(): Promise<void>;
}

export interface AuthzServiceDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  /** The trust bundle for peer certificates Envoy forwards; absent or undefined: not verified. */
  readonly trustRoots?: () => readonly Certificate[] | undefined;
  readonly trustDomain?: string;
  /** Default: verifyX509Svid (src/identity/svid-verify.ts). */
  readonly verifySvid?: SvidVerifier;
  /** The partner CAs in force (--partner-cas, partner-cas-file.ts); absent: none. */
  readonly partners?: () => PartnerTrust | undefined;
  readonly metrics?: AuthzMetrics;
  /** The CA's revocations (the agent's CRL watcher): a revoked peer is denied with reason revoked. */
  readonly revocations?: Revocations;
  /** For decision-log sampling (tests make it deterministic). */
  readonly random?: () => number;
}

/** What ext_authz asks about revocation, per request: two Set lookups. */
export interface Revocations {
  /** serial: lowercase hex, as Certificate.serial. */
  isRevokedSerial(serial: string): boolean;
  isRevokedId(spiffeId: string): boolean;
}

/**
 * The outcome, or a deny with reason revoked when the peer certificate's serial is revoked, or the
 * peer's identity (the certificate's, or the principal Envoy reports when it sends no certificate)
 * is revoked as a whole.
 */
export function withRevocations(outcome: CheckOutcome, revocations: Revocations | undefined): CheckOutcome {
  const input = outcome.input;
  if (!revocations || !input) return outcome;
  const cert = input.peerCertificate;
  let detail: string | undefined;
  if (cert?.serial !== undefined && revocations.isRevokedSerial(cert.serial)) {
    detail = `the peer certificate (serial ${cert.serial}) is revoked`;
  } else {
    const certId = cert?.status === 'verified' || cert?.status === 'mapped' ? cert.spiffeId : cert?.status === 'unverified' ? cert.uriSan : undefined;
    const id = certId !== undefined && revocations.isRevokedId(certId) ? certId : input.principal !== undefined && revocations.isRevokedId(input.principal) ? input.principal : undefined;
    if (id !== undefined) detail = `${id} is revoked`;
  }
  return detail === undefined ? outcome : { ...outcome, decision: denyDecision('revoked', outcome.decision.revision, detail) };
}

export interface AuthzService {
  /** A valid policy set is in force. */
  ready(): boolean;
  /** The revision in force, '' before the first valid set. */
  revision(): string;
  /** The bound TCP port (useful with port 0), if listening on TCP. */
  readonly tcpPort: number | undefined;
  readonly socketPath: string | undefined;
  readonly policies: PolicySource;
  close(): Promise<void>;
}

/** Reads --jwt-rules (a MeshidError naming the file and rule when it cannot be used). */
export function readJwtRules(file: string): JwtRule[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MeshidError('input_unreadable', `cannot read --jwt-rules ${file}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
  }
  return parseJwtRules(text, file);
}

/** Maps the agent's parsed options to the service config; undefined when ext_authz is off. */
export function authzServiceConfig(o: AuthzOptions): AuthzServiceConfig | undefined {
  if (!o.authzSocket && !o.authzListen) return undefined;
  if (!o.policyDir) throw new MeshidError('policy_dir_required', '--policy-dir is required with --authz-socket or --authz-listen');
  return {
    ...(o.authzSocket ? { socket: o.authzSocket, socketMode: o.authzSocketMode } : {}),
    ...(o.authzListen ? { listen: o.authzListen } : {}),
    policyDir: o.policyDir,
    decisionLogSample: o.authzDecisionLogSample,
    ...(o.authzDecisionLogHeaders ? { decisionLogHeaders: o.authzDecisionLogHeaders.map((h) => h.toLowerCase()) } : {}),
    denyDetails: o.authzDenyDetails,
    reloadDebounceMs: o.policyReloadDebounce,
    resyncMs: o.policyResync,
    rateLimit: {
      maxKeys: o.rateLimitMaxKeys,
      ...(o.rateLimitRedis ? { redis: { url: o.rateLimitRedis, timeoutMs: o.rateLimitRedisTimeout, fallback: o.rateLimitRedisFallback } } : {}),
    },
    escapedSlashes: o.authzEscapedSlashes,
    ...(o.authzTrustDomainAliases ? { trustDomainAliases: o.authzTrustDomainAliases } : {}),
    ...(o.jwtRules ? { jwtRules: readJwtRules(o.jwtRules) } : {}),
    ...(o.jwtAuthnMetadataKey ? { jwtAuthnMetadataKey: o.jwtAuthnMetadataKey } : {}),
  };
}

const AUTHZ_SOCKET_ROLE = { name: 'authz', label: 'ext_authz' };

/** Server options shared with the benchmark's bare baseline server, so they differ only in the handler. */
export const GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.enable_channelz': 0,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
};

const SHUTDOWN_GRACE_MS = 2000;

/** A request that could not be decoded: denied as malformed rather than failing the RPC. */
interface Undecodable {
  readonly undecodable: string;
}

export async function startAuthzService(config: AuthzServiceConfig, deps: AuthzServiceDeps): Promise<AuthzService> {
  if (!config.socket && !config.listen) throw new MeshidError('authz_no_listener', 'ext_authz needs a Unix socket or a TCP address');
  const log = deps.logger.child({ component: 'authz' });
  const metrics = deps.metrics ?? noopAuthzMetrics;
  const decisionLog = new DecisionLog(deps.logger.child({ component: 'authz-decision' }), {
    sampleRate: config.decisionLogSample ?? 1,
    ...(config.decisionLogHeaders ? { headers: config.decisionLogHeaders } : {}),
    ...(config.escapedSlashes ? { escapedSlashes: config.escapedSlashes } : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
  const responseOptions = { denyDetails: config.denyDetails ?? true };
  const certificates = peerCertificateChecker({
    trustRoots: deps.trustRoots ?? (() => undefined),
    verify: deps.verifySvid ?? verifyX509Svid,
    ...(deps.trustDomain ? { trustDomain: deps.trustDomain } : {}),
    ...(deps.partners ? { partners: deps.partners } : {}),
    now: () => deps.clock.now(),
  });
  const checkCertificate: CertificateCheck = Object.assign(
    (encoded: string) => {
      const status = certificates.check(encoded);
      metrics.peerCertificate(status.status);
      if (status.partner !== undefined && status.notAfter !== undefined) metrics.partnerCertificate(status.partner, status.sha256!, status.notAfter);
      return status;
    },
    { required: () => certificates.certificateRequired() },
  );

  const policies = await startPolicySource({
    dir: config.policyDir,
    clock: deps.clock,
    logger: deps.logger,
    metrics,
    ...(config.reloadDebounceMs !== undefined ? { debounceMs: config.reloadDebounceMs } : {}),
    ...(config.resyncMs !== undefined ? { resyncMs: config.resyncMs } : {}),
    compile: {
      ...(config.escapedSlashes ? { escapedSlashes: config.escapedSlashes } : {}),
      ...(deps.trustDomain ? { trustDomain: deps.trustDomain, trustDomainAliases: config.trustDomainAliases ?? [] } : {}),
    },
  });

  const requestAuth: RequestAuthOptions = {
    authenticator: config.jwtRules ? await RequestAuthenticator.create(config.jwtRules, { now: () => deps.clock.now() }) : undefined,
    metadataKey: config.jwtAuthnMetadataKey,
  };

  const limiter = await startRateLimiter(config.rateLimit ?? {}, deps.clock, metrics, log);

  const check = (request: CheckRequest | Undecodable): Buffer | Promise<Buffer> => {
    const started = performance.now();
    const decisionId = randomUUID();
    let outcome: CheckOutcome;
    if ('undecodable' in request) {
      outcome = { decision: denyDecision('malformed_request', policies.current()?.revision ?? '', request.undecodable) };
    } else {
      const decided = decideCheckRequestWithTokens(policies.current(), request, checkCertificate, requestAuth);
      if (decided instanceof Promise) return decided.then((o) => limitAndAnswer(withRevocations(o, deps.revocations), started, decisionId));
      outcome = withRevocations(decided, deps.revocations);
    }
    return limitAndAnswer(outcome, started, decisionId);
  };

  const limitAndAnswer = (outcome: CheckOutcome, started: number, decisionId: string): Buffer | Promise<Buffer> => {
    const t = outcome.token;
    if (t) metrics.requestToken(t.source, t.status === 'valid' && t.binding?.bound ? 'bound' : t.status);
    const limit = outcome.decision.rateLimit;
    if (!limit) return answer(outcome, started, decisionId);
    const quota = limiter.take(limit.key, limit.limit.rate);
    if (!(quota instanceof Promise)) return answer({ ...outcome, decision: limited(outcome.decision, quota, 'local') }, started, decisionId);
    return quota.then((q) => answer({ ...outcome, decision: limited(outcome.decision, q, q.fallback ? `fallback_${q.fallback}` : 'redis') }, started, decisionId));
  };

  const limited = (decision: Decision, quota: Quota, counter: RateLimitCounter): Decision => {
    const d = withQuota(decision, quota);
    metrics.rateLimit(d.rateLimit!.limit.id, d.allow ? 'allowed' : d.reason === 'rate_limited' ? 'limited' : 'unavailable', counter);
    return d;
  };

  const answer = (decided: CheckOutcome, started: number, decisionId: string): Buffer => {
    let outcome = decided;
    let response: Buffer;
    try {
      response = encodeCheckResponse(outcome.decision, decisionId, responseOptions);
    } catch (e) {
      outcome = { decision: denyDecision('internal_error', outcome.decision.revision, errorMessage(e)) };
      response = FALLBACK_DENY;
    }
    const seconds = (performance.now() - started) / 1000;
    const d = outcome.decision;
    metrics.decision(d.allow ? 'allow' : 'deny', d.reason, d.rule?.policy.id, seconds, d.dryRun?.changed === true);
    if (decisionLog.wants(d)) {
      const input = outcome.input;
      decisionLog.record({
        decisionId,
        requestId: outcome.requestId,
        input,
        decision: d,
        token: outcome.token,
        latencyUs: Math.round(seconds * 1e6),
      });
    }
    return response;
  };

  const server = new grpc.Server(serverOptions(GRPC_SERVER_OPTIONS));
  server.addService(checkServiceDefinition(), {
    Check(call: grpc.ServerUnaryCall<CheckRequest | Undecodable, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      // Fail closed: whatever went wrong, the answer is a deny, not an RPC error.
      const failed = (e: unknown) => {
        log.error({ err: errorMessage(e) }, 'ext_authz handler failed; answering deny');
        callback(null, FALLBACK_DENY);
      };
      try {
        const response = check(call.request);
        if (response instanceof Promise) response.then((r) => callback(null, r), failed);
        else callback(null, response);
      } catch (e) {
        failed(e);
      }
    },
  });

  let socketPath: string | undefined;
  let boundSocket: BoundSocket | undefined;
  let tcpPort: number | undefined;
  try {
    if (config.socket) {
      boundSocket = await listenOnUnixSocket(server, config.socket, config.socketMode ?? 0o600, deps.clock, AUTHZ_SOCKET_ROLE);
      socketPath = boundSocket.path;
      log.info({ socket: socketPath }, 'ext_authz serving on Unix socket');
    }
    if (config.listen) {
      tcpPort = await bind(server, formatHostPort(config.listen));
      log.info({ address: formatHostPort({ host: config.listen.host, port: tcpPort }) }, 'ext_authz serving on TCP');
    }
  } catch (e) {
    server.forceShutdown();
    await policies.close();
    await limiter.close();
    throw e;
  }
  if (!policies.current()) log.warn({ dir: config.policyDir }, 'ext_authz not ready: no valid policy set; every check is denied');

  return {
    ready: () => policies.current() !== undefined,
    revision: () => policies.current()?.revision ?? '',
    tcpPort,
    socketPath,
    policies,
    async close() {
      // In-flight checks get a grace period, then connections are cut.
      await shutdownGracefully(server, deps.clock, SHUTDOWN_GRACE_MS);
      await policies.close();
      await limiter.close();
      boundSocket?.remove();
    },
  };
}

/** How long start-up waits for the first Redis connection before serving with the fallback. */
const REDIS_STARTUP_WAIT_MS = 2000;

/** The in-memory counters, or Redis with them as its `local` fallback (the client loads only when used). */
async function startRateLimiter(config: RateLimitConfig, clock: Clock, metrics: AuthzMetrics, log: Logger): Promise<RateLimiter> {
  const local = new LocalLimiter({ clock, maxKeys: config.maxKeys ?? 100_000, onEvict: () => metrics.rateLimitEviction() });
  if (!config.redis) return { take: (key, rate) => local.take(key, rate), close: async () => {} };
  const { RedisLimiter } = await import('./rate-limit/redis-limiter.js');
  const { url, ...rest } = config.redis;
  metrics.rateLimitStore(true);
  const redis = new RedisLimiter({
    url,
    ...rest,
    local,
    onStateChange: (up, detail) => {
      metrics.rateLimitStore(up);
      if (up) log.info('rate-limit counters: Redis reachable again');
      else log.warn({ err: detail, fallback: rest.fallback }, `rate-limit counters: Redis not answering; the ${rest.fallback} fallback decides`);
    },
  });
  // A Redis that does not answer in time is already logged by onStateChange; serving starts anyway.
  await redis.connected(REDIS_STARTUP_WAIT_MS);
  return redis;
}

/** Check, with our codec: requests decoded without conversion, responses already encoded. */
function checkServiceDefinition(): grpc.ServiceDefinition {
  const protos = envoyProtos();
  const base = protos.authzService.Check;
  const requestType = protos.CheckRequest;
  return {
    Check: {
      ...base,
      requestDeserialize: (bytes: Buffer): CheckRequest | Undecodable => {
        try {
          return requestType.decode(bytes) as CheckRequest;
        } catch (e) {
          return { undecodable: `the CheckRequest cannot be decoded: ${errorMessage(e)}` };
        }
      },
      responseSerialize: (response: Buffer) => response,
    },
  };
}

/** Answer for when even encoding a decision failed: PERMISSION_DENIED, 403, no details. */
const FALLBACK_DENY = encodeCheckResponse(denyDecision('internal_error', ''), 'none', { denyDetails: false });

async function bind(server: grpc.Server, address: string): Promise<number> {
  try {
    return await bindServer(server, address);
  } catch (e) {
    throw new MeshidError('authz_bind_failed', `ext_authz cannot listen on ${address} (--authz-listen): ${errorMessage(e)}`);
  }
}

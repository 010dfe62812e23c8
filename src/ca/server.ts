/**
 * The reference CA: istio.v1.auth.IstioCertificateService over TLS. startCa() is what `meshid ca`,
 * `meshid dev` and the tests run; it reads its state, binds, and returns a handle to close it.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { formatHostPort } from '../config/options.js';
import type { GeneralName } from '../identity/extensions.js';
import type { SpiffeId } from '../identity/spiffe-id.js';
import { type Clock, systemClock, type Timer } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { bindServer, serverOptions, shutdownGracefully } from '../lib/grpc-server.js';
import { grpcStatusOf } from '../lib/grpc-status.js';
import { type Logger, silentLogger } from '../observability/logger.js';
import { AUDIT_FILE, operatorName } from './audit.js';
import { type AuthMethod, CallerAuthenticator } from './auth/authenticator.js';
import { JwtAuthenticator, parseJwtKeys } from './auth/jwt.js';
import { StaticTokens } from './auth/static-tokens.js';
import { Authority } from './authority.js';
import { issueServingCertificate, SERVING_LIFETIME_MS, servingName } from './ca-certificates.js';
import { CrlKeeper } from './crl-keeper.js';
import type { CaConfig } from './options.js';
import { type FetchJWTBundleResponse, jwtSvidServiceDefinition, type MintJWTSVIDRequest__Output, type MintJWTSVIDResponse } from './jwt-protocol.js';
import { JwtSvidIssuer } from './jwt-svid.js';
import { IssuanceLimits, LimitError, RETRY_PUSHBACK_KEY } from './limits.js';
import { caServiceDefinition, type IstioCertificateRequest__Output, type IstioCertificateResponse } from './protocol.js';
import { type FetchCRLRequest__Output, type FetchCRLResponse, MAX_CRL_WAIT_MS, revocationServiceDefinition } from './revocation-protocol.js';
import { ServingCertificateProvider, servingCredentials } from './serving-credentials.js';
import { loadOrCreateJwtSvidKey, loadOrCreateState } from './state.js';

export interface CaDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export interface RunningCa {
  /** host:port actually bound (the port resolved when 0 was asked). */
  readonly address: string;
  readonly port: number;
  readonly trustDomain: string;
  readonly bundlePem: string;
  readonly bundlePath: string;
  /** The CRL served on RevocationService/FetchCRL. */
  readonly crls: CrlKeeper;
  close(): Promise<void>;
}

/** CSRs are a few KB (RSA-8192 about 3 KB); anything near this is not a CSR. */
const MAX_REQUEST_BYTES = 64 * 1024;
const SHUTDOWN_GRACE_MS = 5000;

export async function startCa(config: CaConfig, deps: CaDeps = {}): Promise<RunningCa> {
  const clock = deps.clock ?? systemClock;
  const log = (deps.logger ?? silentLogger()).child({ component: 'ca' });
  const { trustDomain } = config;

  const servingNames: GeneralName[] = config.san.map(servingName);
  const jwt = loadJwt(config);
  const staticTokens = config.staticTokens ? StaticTokens.parse(readConfigFile(config.staticTokens, '--static-tokens'), trustDomain, config.staticTokens) : undefined;

  const state = loadOrCreateState(config.stateDir, trustDomain, clock.now());
  for (const w of state.warnings) log.warn({ event: 'state_warning' }, w);
  const authority = new Authority(trustDomain, state.material, { defaultTtlMs: config.ttl, maxTtlMs: config.maxTtl });
  const jwtKeyWarnings: string[] = [];
  const jwtSvids = await JwtSvidIssuer.create(loadOrCreateJwtSvidKey(config.stateDir, jwtKeyWarnings), trustDomain, config.jwtSvidTtl);
  for (const w of jwtKeyWarnings) log.warn({ event: 'state_warning' }, w);
  const crls = await CrlKeeper.start({
    stateDir: config.stateDir,
    authority,
    validityMs: config.crlValidity,
    auditLog: config.auditLog ?? path.join(config.stateDir, AUDIT_FILE),
    who: `meshid ca (${operatorName(process.env)}, pid ${process.pid})`,
    clock,
    logger: log,
  });
  // A revoked certificate no longer authenticates its holder: an agent whose SVID was revoked renews with its token.
  const authenticator = new CallerAuthenticator({ authority, isRevoked: (serial) => crls.isRevoked(serial), ...(jwt ? { jwt } : {}), ...(staticTokens ? { staticTokens } : {}) });
  log.info(
    { event: 'state_loaded', stateDir: config.stateDir, mode: state.mode, created: state.created, caExpiresAt: authority.expiresAt.toISOString() },
    state.created ? 'created a new root CA' : `loaded the ${state.mode} CA`,
  );
  if (staticTokens) log.warn({ event: 'static_tokens', count: staticTokens.size }, 'static bearer tokens are enabled: for development only');
  if (!jwt && !staticTokens) log.warn({ event: 'no_bootstrap_auth' }, 'neither --jwt-keys nor --static-tokens: only renewals over mTLS can succeed');

  // The serving certificate is not worth persisting: a new key at each start, renewed at half life.
  const provider = new ServingCertificateProvider(state.bundlePem);
  let renewal: Timer | undefined;
  const renewServing = () => {
    try {
      const serving = issueServingCertificate(authority, servingNames, clock.now());
      provider.setIdentity(serving.certChainPem, serving.privateKeyPem);
      log.debug({ event: 'serving_certificate', notAfter: serving.notAfter.toISOString() }, 'serving certificate issued');
      renewal = clock.setTimer(Math.max(1000, Math.min(SERVING_LIFETIME_MS / 2, (serving.notAfter.getTime() - clock.now()) / 2)), renewServing);
    } catch (e) {
      // Only the CA's own chain expiring gets here; keep serving what we have and say so.
      log.error({ event: 'serving_certificate_failed', err: errorMessage(e) }, 'cannot renew the serving certificate');
    }
  };
  renewServing();

  const limits = new IssuanceLimits({
    ratePerMinute: config.issuanceRate,
    burst: config.issuanceBurst,
    maxConcurrent: config.maxConcurrentIssuance,
    shedRetryMs: config.shedRetry,
  });
  let shedLogged = 0;

  const server = new grpc.Server(serverOptions({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES }));
  server.addService(caServiceDefinition(), {
    CreateCertificate: (
      call: grpc.ServerUnaryCall<IstioCertificateRequest__Output, IstioCertificateResponse>,
      callback: grpc.sendUnaryData<IstioCertificateResponse>,
    ) => {
      // Shed before any work (authentication included): a CA that queues without bound answers everyone late.
      const slot = limits.acquire();
      if (!slot.ok) {
        // One line per second at most: shedding is what an overloaded CA does, and logging each call would add to the load.
        if (clock.now() - shedLogged >= 1000) {
          shedLogged = clock.now();
          log.warn({ event: 'certificate_shed', inFlight: limits.concurrent(), retryAfterMs: slot.retryAfterMs, peer: call.getPeer() }, slot.message);
        }
        callback(refusal(new LimitError(slot)));
        return;
      }
      void handle(call)
        .finally(() => limits.release())
        .then(
          (response) => callback(null, response),
          (e: unknown) => callback(refusal(e as MeshidError)),
        );
    },
  });

  server.addService(jwtSvidServiceDefinition(), {
    MintJWTSVID: (call: grpc.ServerUnaryCall<MintJWTSVIDRequest__Output, MintJWTSVIDResponse>, callback: grpc.sendUnaryData<MintJWTSVIDResponse>) => {
      void mintJwtSvid(call).then(
        (response) => callback(null, response),
        (e: unknown) => callback({ code: grpcStatusOf((e as MeshidError).kind), details: (e as MeshidError).message }),
      );
    },
    FetchJWTBundle: (_call: grpc.ServerUnaryCall<object, FetchJWTBundleResponse>, callback: grpc.sendUnaryData<FetchJWTBundleResponse>) =>
      callback(null, { trust_domain: trustDomain, jwks: jwtSvids.jwks() }),
  });

  server.addService(revocationServiceDefinition(), {
    FetchCRL: (call: grpc.ServerUnaryCall<FetchCRLRequest__Output, FetchCRLResponse>, callback: grpc.sendUnaryData<FetchCRLResponse>) => {
      authenticateCall(call).then(
        ({ identity }) => {
          const known = Number(call.request.known_crl_number ?? 0);
          const deadline = call.getDeadline();
          const untilDeadline = deadline instanceof Date ? deadline.getTime() - Date.now() - 250 : Number.isFinite(deadline) ? Number(deadline) - Date.now() - 250 : Infinity;
          const wait = Math.max(0, Math.min(Number(call.request.wait_ms ?? 0), MAX_CRL_WAIT_MS, untilDeadline));
          let answered = false;
          const answer = (closing: boolean) => {
            if (answered) return;
            answered = true;
            // A shutting-down CA sends callers to their backoff, not into a loop of immediate answers.
            if (closing) return callback({ code: grpc.status.UNAVAILABLE, details: 'the CA is shutting down' });
            const served = crls.current();
            if (!served) return callback(null, { crl_number: 0 });
            if (served.crlNumber === known) return callback(null, { crl_number: served.crlNumber });
            log.debug({ event: 'crl_fetched', identity: identity.uri, crlNumber: served.crlNumber, known, peer: call.getPeer() }, 'CRL sent');
            callback(null, { crl_number: served.crlNumber, crl: served.der, revoked_ids: [...served.revokedIds] });
          };
          const cancel = crls.waitNewer(known, wait, answer);
          call.on('cancelled', () => {
            answered = true;
            cancel();
          });
        },
        (e: unknown) => {
          const err = e instanceof MeshidError ? e : new MeshidError('internal_error', 'internal error while authenticating');
          log.warn({ event: 'crl_fetch_refused', reason: err.code, peer: call.getPeer() }, err.message);
          callback({ code: grpcStatusOf(err.kind), details: err.message });
        },
      );
    },
  });

  /** The caller's identity, from its client certificate or its bearer token. */
  function authenticateCall(call: grpc.ServerUnaryCall<unknown, unknown>) {
    const raw = call.getAuthContext().sslPeerCertificate?.raw;
    const authorization = call.metadata.get('authorization')[0];
    return authenticator.authenticate(
      { ...(raw ? { peerCertificate: raw } : {}), ...(authorization !== undefined ? { authorization: authorization.toString() } : {}) },
      clock.now(),
    );
  }

  async function mintJwtSvid(call: grpc.ServerUnaryCall<MintJWTSVIDRequest__Output, MintJWTSVIDResponse>): Promise<MintJWTSVIDResponse> {
    let identity: SpiffeId | undefined;
    try {
      ({ identity } = await authenticateCall(call));
      const minted = await jwtSvids.mint(identity, call.request.audience ?? [], requestedSeconds(call.request.ttl_seconds), clock.now());
      log.info({ event: 'jwt_svid_issued', identity: identity.uri, audience: call.request.audience, expiresAt: new Date(minted.expiresAt * 1000).toISOString(), peer: call.getPeer() }, 'JWT-SVID issued');
      return { token: minted.token, spiffe_id: minted.spiffeId, expires_at: minted.expiresAt };
    } catch (e) {
      const err = e instanceof MeshidError ? e : new MeshidError('internal_error', 'internal error while minting a JWT-SVID');
      if (err !== e) log.error({ event: 'internal_error', err: errorMessage(e) }, 'unexpected failure while handling MintJWTSVID');
      log.warn({ event: 'jwt_svid_refused', ...(identity ? { identity: identity.uri } : {}), reason: err.code, status: grpc.status[grpcStatusOf(err.kind)], peer: call.getPeer() }, err.message);
      throw err;
    }
  }

  async function handle(call: grpc.ServerUnaryCall<IstioCertificateRequest__Output, IstioCertificateResponse>): Promise<IstioCertificateResponse> {
    const peer = call.getPeer();
    let identity: SpiffeId | undefined;
    let method: AuthMethod | undefined;
    try {
      ({ identity, method } = await authenticateCall(call));
      const budget = limits.take(identity.uri, clock.now());
      if (!budget.ok) throw new LimitError(budget);
      const issued = authority.issue({
        csrPem: call.request.csr ?? '',
        identity,
        requestedTtlSeconds: requestedSeconds(call.request.validity_duration),
        now: clock.now(),
      });
      log.info(
        {
          event: 'certificate_issued',
          identity: identity.uri,
          auth: method,
          serial: issued.serial,
          notBefore: issued.notBefore.toISOString(),
          notAfter: issued.notAfter.toISOString(),
          ...(issued.ttl.clampedFromMs !== undefined ? { requestedTtlSeconds: issued.ttl.clampedFromMs / 1000, clampedToSeconds: issued.ttl.ttlMs / 1000 } : {}),
          ...(issued.cappedByIssuer ? { cappedByIssuer: true } : {}),
          peer,
        },
        issued.ttl.clampedFromMs !== undefined ? 'certificate issued (requested lifetime clamped to --max-ttl)' : 'certificate issued',
      );
      return { cert_chain: issued.chainPem };
    } catch (e) {
      const err = e instanceof MeshidError ? e : new MeshidError('internal_error', 'internal error while issuing');
      if (err !== e) log.error({ event: 'internal_error', err: errorMessage(e) }, 'unexpected failure while handling CreateCertificate');
      log.warn(
        { event: 'certificate_refused', ...(identity ? { identity: identity.uri, auth: method } : {}), reason: err.code, status: grpc.status[grpcStatusOf(err.kind)], peer },
        err.message,
      );
      throw err;
    }
  }

  const target = formatHostPort(config.listen);
  let port: number;
  try {
    port = await bindServer(server, target, servingCredentials(provider));
  } catch (e) {
    renewal?.cancel();
    await crls.close();
    server.forceShutdown();
    throw new MeshidError('listen_failed', `cannot listen on ${target} (--listen): ${errorMessage(e)}`);
  }
  const address = formatHostPort({ host: config.listen.host, port });
  log.info({ event: 'listening', address, trustDomain, bundle: state.bundlePath }, `CA listening on ${address} for trust domain ${trustDomain}; trust bundle at ${state.bundlePath}`);

  let closed: Promise<void> | undefined;
  return {
    address,
    port,
    trustDomain,
    bundlePem: state.bundlePem,
    bundlePath: state.bundlePath,
    crls,
    close() {
      renewal?.cancel();
      // Long polls are answered ("unchanged") first, so they do not hold the shutdown for its grace period.
      closed ??= crls.close().then(() => shutdownGracefully(server, clock, SHUTDOWN_GRACE_MS)).then(() => log.info({ event: 'stopped' }, 'CA stopped'));
      return closed;
    },
  };
}

/** The status for a refusal; a limit's refusal carries its retry hint as the grpc-retry-pushback-ms trailer (gRFC A6). */
function refusal(err: MeshidError): Partial<grpc.StatusObject> {
  const status: Partial<grpc.StatusObject> = { code: grpcStatusOf(err.kind), details: err.message };
  if (err instanceof LimitError) {
    const metadata = new grpc.Metadata();
    metadata.set(RETRY_PUSHBACK_KEY, String(err.decision.retryAfterMs));
    status.metadata = metadata;
  }
  return status;
}

function configError(detail: string): MeshidError {
  return new MeshidError('ca_config_invalid', detail);
}

function readConfigFile(file: string, flag: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw configError(`${flag} ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
}

function loadJwt(config: CaConfig): JwtAuthenticator | undefined {
  if (!config.jwtKeys) return undefined;
  // caRules refuses keys without an issuer before start-up; this guard keeps a caller that skipped the schema from accepting any issuer.
  if (!config.jwtIssuer) throw configError('--jwt-keys needs --jwt-issuer: tokens from any issuer would otherwise be accepted');
  const jwks = parseJwtKeys(readConfigFile(config.jwtKeys, '--jwt-keys'), config.jwtKeys);
  return new JwtAuthenticator(jwks, { issuer: config.jwtIssuer, audience: config.jwtAudience, trustDomain: config.trustDomain });
}

/**
 * validity_duration arrives as a decimal string (int64); absent or "0" means the default. Large
 * values become an approximate (whole) double, which resolveTtl clamps like any long request.
 */
function requestedSeconds(raw: string | number | undefined): number | undefined {
  return raw === undefined ? undefined : Number(raw);
}

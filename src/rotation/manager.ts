/**
 * The SVID manager: generates the workload key locally, obtains an X.509-SVID from the CA, renews
 * it with a fresh key when the rotation policy says so, and holds it and the trust bundle in
 * memory for the rooms that serve it (the IdentitySource of src/identity/svid.ts).
 *
 * Failure stance: a CA failure never costs us the SVID we hold; we retry with jittered backoff for
 * as long as it takes and never give up, but we stop serving the SVID at the instant it expires.
 * Time comes from the injected Clock; besides the timer for the next event, a watchdog wakes up
 * every watchdogMs and re-reads the wall clock, because a timer does not notice a suspended VM
 * or a clock step, and a renewal that fell due meanwhile must happen promptly.
 */
import { Backoff } from '../lib/backoff.js';
import type { Clock, Timer } from '../lib/clock.js';
import { errorMessage, isMeshidError, MeshidError } from '../lib/errors.js';
import { parseTrustBundle } from '../identity/bundle.js';
import type { Certificate } from '../identity/certificate.js';
import { createCsr } from '../identity/csr.js';
import { generateKeyPair, type KeyAlgorithm } from '../identity/keys.js';
import { parseSpiffeId, type SpiffeId } from '../identity/spiffe-id.js';
import type { IdentitySource, TrustBundleView, WorkloadSvid } from '../identity/svid.js';
import type { Logger } from '../observability/logger.js';
import type { CaAuth, CaResult, CertificateSigner } from './ca-signer.js';
import { type AcceptedSvid, acceptIssuedChain } from './issued-svid.js';
import type { RotationFailureKind, SvidMetrics } from './metrics.js';
import { authKindFor, renewalTime, resolveRotationPolicy, retryDelay, type RotationPolicy, type RotationPolicyInput } from './policy.js';
import { TrustBundleState } from './trust-bundle.js';
import { startupMark } from '../lib/startup-timing.js';

export interface SvidManagerOptions {
  /** The workload's identity; the CA must issue exactly this. */
  readonly spiffeId: SpiffeId | string;
  readonly signer: CertificateSigner;
  /** The bearer token, fetched afresh for every token-authenticated request (projected tokens rotate). */
  readonly token: () => Promise<string>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Default 'ec-p256'. */
  readonly keyAlgorithm?: KeyAlgorithm;
  /** validity_duration asked of the CA; the CA's default when undefined. */
  readonly ttlSeconds?: number;
  readonly policy?: RotationPolicyInput;
  /** Period of the wall-clock re-check; bounds how late a renewal is after a suspend. Default 10 s. */
  readonly watchdogMs?: number;
  /** Uniform in [0, 1); one draw per SVID for renewal jitter and one per failure for backoff. */
  readonly random?: () => number;
  readonly metrics?: Partial<SvidMetrics>;
  /** The configured trust bundle (PEM), if any; later changes go through setConfiguredRoots. */
  readonly configuredRootsPem?: string;
}

export interface SvidManagerStatus {
  readonly spiffeId: string;
  readonly ready: boolean;
  /** Expiry of the SVID being served. */
  readonly expiresAt?: number;
  /** When the next CA request is due (renewal or retry); undefined while one is in flight. */
  readonly nextAttemptAt?: number;
  readonly requestInFlight: boolean;
  readonly consecutiveFailures: number;
  readonly lastFailure?: { readonly kind: RotationFailureKind; readonly message: string; readonly at: number };
}

const DEFAULT_WATCHDOG_MS = 10_000;

const CONFIGURED = 'configured trust bundle';

// gRPC status numbers for failures the manager detects itself (rotation does not import grpc).
const CANCELLED = 1;
const DEADLINE_EXCEEDED = 4;
const INTERNAL = 13;

type Phase =
  | { readonly kind: 'created' }
  | { readonly kind: 'waiting'; readonly at: number; readonly reason: 'renewal' | 'retry' }
  | { readonly kind: 'requesting' }
  | { readonly kind: 'stopped' };

type Outcome =
  | { readonly ok: true; readonly auth: CaAuth['kind']; readonly accepted: AcceptedSvid }
  | {
      readonly ok: false;
      readonly auth: CaAuth['kind'];
      readonly kind: RotationFailureKind;
      readonly grpcCode?: number;
      /** Our stable error code, when the refusal is ours. */
      readonly code?: string;
      readonly message: string;
      /** The CA's retry hint (grpc-retry-pushback-ms). */
      readonly retryAfterMs?: number;
    };

export class SvidManager implements IdentitySource {
  readonly spiffeId: SpiffeId;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly policy: RotationPolicy;
  private readonly metrics: SvidMetrics;
  private readonly random: () => number;
  private readonly watchdogMs: number;
  private readonly backoff: Backoff;
  private readonly bundle: TrustBundleState;
  private readonly listeners = new Set<() => void>();
  private readonly first: Deferred<WorkloadSvid>;

  private phase: Phase = { kind: 'created' };
  private held: { readonly svid: WorkloadSvid; readonly receivedAt: number } | undefined;
  private expiryAnnounced = false;
  private wake: Timer | undefined;
  private attemptSeq = 0;
  private cancelAttempt: (() => void) | undefined;
  private mtlsRefused = false;
  private consecutiveFailures = 0;
  private lastFailure: SvidManagerStatus['lastFailure'];
  private crl: { readonly pem: string; readonly crlNumber: number } | undefined;
  private bundleWithCrl: { readonly base: TrustBundleView; readonly view: TrustBundleView } | undefined;

  constructor(private readonly options: SvidManagerOptions) {
    this.spiffeId = typeof options.spiffeId === 'string' ? parseSpiffeId(options.spiffeId) : options.spiffeId;
    this.clock = options.clock;
    this.log = options.logger.child({ component: 'svid', spiffeId: this.spiffeId.uri });
    this.policy = resolveRotationPolicy(options.policy);
    this.metrics = guardedMetrics(options.metrics, this.log);
    this.random = options.random ?? Math.random;
    this.watchdogMs = options.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    if (!(this.watchdogMs > 0)) throw new MeshidError('rotation_option_invalid', `watchdogMs must be > 0, got ${this.watchdogMs}`);
    const { initialMs, maxMs, multiplier } = this.policy.retry;
    this.backoff = new Backoff({ initialMs, maxMs, multiplier, random: this.random });
    this.bundle = new TrustBundleState(this.spiffeId.trustDomain);
    this.first = deferred();
    if (options.configuredRootsPem !== undefined) this.bundle.setConfigured(parseTrustBundle(this.spiffeId.trustDomain, options.configuredRootsPem, CONFIGURED));
  }

  // ---- IdentitySource: what the serving rooms read ---------------------------------------------

  /** The SVID being served; undefined before the first one and from the instant it expires. */
  currentSvid(): WorkloadSvid | undefined {
    const held = this.held;
    return held && this.clock.now() < held.svid.expiresAt ? held.svid : undefined;
  }

  /** The trust bundle, with the CRL in force when there is one (validation contexts carry both). */
  currentBundle(): TrustBundleView | undefined {
    const base = this.bundle.view();
    const crl = this.crl;
    if (!base || !crl) return base;
    if (this.bundleWithCrl?.base !== base || this.bundleWithCrl.view.crlPem !== crl.pem) {
      this.bundleWithCrl = { base, view: Object.freeze({ ...base, crlPem: crl.pem, version: `${base.version}.crl${crl.crlNumber}` }) };
    }
    return this.bundleWithCrl.view;
  }

  /** The trusted roots as parsed certificates (for verifying peers, e.g. in ext_authz). */
  trustRoots(): readonly Certificate[] {
    return this.bundle.roots();
  }

  /** listener runs after the SVID or the bundle changed, and when the SVID expires. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Starts the first request at once; await firstSvid() to wait for the result. */
  start(): void {
    if (this.phase.kind !== 'created') return;
    this.log.info({ keyAlgorithm: this.options.keyAlgorithm ?? 'ec-p256' }, 'requesting the first SVID');
    void this.attempt();
  }

  /** Cancels every timer and abandons the request in flight; nothing runs afterwards. */
  stop(): void {
    if (this.phase.kind === 'stopped') return;
    this.phase = { kind: 'stopped' };
    this.attemptSeq++;
    this.wake?.cancel();
    this.wake = undefined;
    this.cancelAttempt?.();
    this.first.reject(new MeshidError('svid_manager_stopped', 'the SVID manager stopped before it obtained an SVID'));
    this.log.info('stopped');
  }

  /**
   * Renews now instead of at the scheduled time (an operator's SIGUSR1, or a demo). Returns false,
   * doing nothing, when a request is already in flight or the manager is not running.
   */
  renewNow(): boolean {
    if (this.phase.kind !== 'waiting') return false;
    this.log.info({ scheduledFor: iso(this.phase.at) }, 'renewal requested now');
    void this.attempt();
    return true;
  }

  /** Has a valid SVID. */
  ready(): boolean {
    return this.currentSvid() !== undefined;
  }

  /** Resolves with the first SVID obtained; rejects if stop() comes first. */
  firstSvid(): Promise<WorkloadSvid> {
    return this.first.promise;
  }

  status(): SvidManagerStatus {
    const svid = this.currentSvid();
    return {
      spiffeId: this.spiffeId.uri,
      ready: svid !== undefined,
      ...(svid ? { expiresAt: svid.expiresAt } : {}),
      ...(this.phase.kind === 'waiting' ? { nextAttemptAt: this.phase.at } : {}),
      requestInFlight: this.phase.kind === 'requesting',
      consecutiveFailures: this.consecutiveFailures,
      ...(this.lastFailure ? { lastFailure: this.lastFailure } : {}),
    };
  }

  /**
   * Replaces the configured trust bundle (undefined: none). Bad input throws a MeshidError that
   * names the problem and leaves the bundle as it was.
   */
  setConfiguredRoots(pem: string | undefined): void {
    const configured = pem === undefined ? undefined : parseTrustBundle(this.spiffeId.trustDomain, pem, CONFIGURED);
    if (this.bundle.setConfigured(configured)) {
      this.logBundle('configured bundle changed');
      this.notify();
    }
  }

  /**
   * The CA's revocations changed: crl is the CRL to serve with the bundle (undefined: none, or
   * expired), isRevoked tells revoked serials. When the SVID we hold is revoked we renew at once,
   * with the token (the CA no longer accepts the revoked certificate).
   */
  applyRevocations(crl: { readonly pem: string; readonly crlNumber: number } | undefined, isRevoked: (serial: string) => boolean): void {
    const changed = crl?.pem !== this.crl?.pem;
    this.crl = crl;
    if (changed) {
      this.log.info({ crlNumber: crl?.crlNumber ?? null }, crl ? `trust bundle carries CRL ${crl.crlNumber}` : 'trust bundle carries no CRL');
      this.notify();
    }
    const held = this.held?.svid;
    if (!held || !isRevoked(held.version) || this.phase.kind === 'stopped') return;
    this.mtlsRefused = true;
    if (this.phase.kind === 'waiting') {
      this.log.warn({ serial: held.version }, 'the SVID we hold is revoked; renewing now with the token');
      void this.attempt();
    } else if (this.phase.kind === 'requesting') {
      this.log.warn({ serial: held.version }, 'the SVID we hold is revoked; a renewal is already under way');
    }
  }

  // ---- scheduling -----------------------------------------------------------------------------

  /** Arms the one wake-up timer for the earliest of: next attempt, expiry, bundle prune, watchdog. */
  private schedule(): void {
    this.wake?.cancel();
    this.wake = undefined;
    if (this.phase.kind === 'stopped') return;
    const now = this.clock.now();
    let at = now + this.watchdogMs;
    if (this.phase.kind === 'waiting') at = Math.min(at, this.phase.at);
    if (this.held && !this.expiryAnnounced) at = Math.min(at, this.held.svid.expiresAt);
    const prune = this.bundle.nextPruneAt();
    if (prune !== undefined) at = Math.min(at, prune);
    this.wake = this.clock.setTimer(Math.max(0, at - now), () => {
      this.wake = undefined;
      this.tick();
    });
  }

  /** Everything is decided from the wall clock here, whatever timer brought us. */
  private tick(): void {
    if (this.phase.kind === 'stopped') return;
    const now = this.clock.now();
    let changed = false;
    if (this.held && !this.expiryAnnounced && now >= this.held.svid.expiresAt) {
      this.expiryAnnounced = true;
      this.metrics.expiry(undefined);
      this.log.error({ serial: this.held.svid.version, expiredAt: iso(this.held.svid.expiresAt) }, 'the SVID expired without a renewal; no longer serving it');
      changed = true;
    }
    if (this.bundle.prune(now)) {
      this.logBundle('a root from an earlier chain retired');
      changed = true;
    }
    if (changed) this.notify();
    if (this.phase.kind === 'waiting' && now >= this.phase.at) {
      if (this.phase.reason === 'renewal') this.log.info({ lateByMs: now - this.phase.at }, 'renewing the SVID');
      void this.attempt();
      return;
    }
    this.schedule();
  }

  // ---- one request ----------------------------------------------------------------------------

  private async attempt(): Promise<void> {
    const seq = ++this.attemptSeq;
    this.phase = { kind: 'requesting' };
    this.schedule();
    const outcome = await this.request(seq);
    if (seq !== this.attemptSeq) return; // stop() came first

    if (outcome.ok) this.onIssued(outcome.accepted, outcome.auth);
    else this.onFailure(outcome);
    this.schedule();
  }

  /** One CA round trip; every failure comes back as an Outcome, never as a throw. */
  private async request(seq: number): Promise<Outcome> {
    const now = this.clock.now();
    const valid = this.currentSvid();
    const lifetime = this.held ? this.held.svid.expiresAt - this.held.receivedAt : Infinity;
    const authKind = authKindFor(now, valid?.expiresAt, Math.min(this.policy.mtlsMarginMs, lifetime / 4), this.mtlsRefused);
    this.log.debug({ auth: authKind }, 'requesting an SVID');
    try {
      startupMark('keygen_start');
      const key = await generateKeyPair(this.options.keyAlgorithm ?? 'ec-p256');
      const csr = createCsr(this.spiffeId, key);
      startupMark('key_and_csr_ready');
      let auth: CaAuth;
      if (authKind === 'mtls' && valid) {
        auth = { kind: 'mtls', certChainPem: valid.certChainPem, privateKeyPem: valid.privateKeyPem };
      } else {
        const token = await this.readToken();
        if (typeof token !== 'string') return { ok: false, auth: authKind, ...token };
        auth = { kind: 'token', token };
      }
      // Key generation and the token read are asynchronous: stop() may have come meanwhile.
      if (seq !== this.attemptSeq) return { ok: false, auth: authKind, kind: 'unavailable', message: 'cancelled: the manager stopped' };
      // A duration, not a schedule: measured on the monotonic clock, not the injected wall clock.
      const started = performance.now();
      startupMark('ca_request');
      const result = await this.callCa(csr.pem, auth);
      startupMark('ca_answered');
      this.metrics.caRequest(performance.now() - started, result.ok ? 0 : result.grpcCode);
      if (!result.ok) {
        const hint = result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {};
        return { ok: false, auth: authKind, kind: result.kind, grpcCode: result.grpcCode, message: result.message, ...hint };
      }
      try {
        const accepted = acceptIssuedChain(result.chainPem, { spiffeId: this.spiffeId, key, configuredRoots: this.bundle.configuredRoots() }, this.clock.now());
        return { ok: true, auth: authKind, accepted };
      } catch (e) {
        const code = isMeshidError(e) ? e.code : 'ca_response_invalid';
        return { ok: false, auth: authKind, kind: 'invalid_response', code, message: `refused the CA's answer: ${errorMessage(e)}` };
      }
    } catch (e) {
      const meshid = isMeshidError(e) ? { kind: e.kind, code: e.code } : { kind: 'internal' as const };
      return { ok: false, auth: authKind, ...meshid, message: errorMessage(e) };
    }
  }

  private async readToken(): Promise<string | { kind: RotationFailureKind; code: string; message: string }> {
    try {
      const token = (await this.options.token()).trim();
      if (token === '') return { kind: 'token_unreadable', code: 'token_empty', message: 'the bearer token is empty' };
      return token;
    } catch (e) {
      return { kind: 'token_unreadable', code: 'token_unreadable', message: `cannot read the bearer token: ${errorMessage(e)}` };
    }
  }

  /** The signer's answer, or a deadline_exceeded of our own after attemptTimeoutMs, or a cancellation by stop(). */
  private callCa(csrPem: string, auth: CaAuth): Promise<CaResult> {
    const ms = this.policy.retry.attemptTimeoutMs;
    return new Promise<CaResult>((resolve) => {
      let settled = false;
      const finish = (r: CaResult) => {
        // A late answer after our deadline must not touch the state of a newer attempt.
        if (settled) return;
        settled = true;
        timer.cancel();
        if (this.cancelAttempt === cancel) this.cancelAttempt = undefined;
        resolve(r);
      };
      const timer = this.clock.setTimer(ms, () =>
        finish({ ok: false, kind: 'deadline_exceeded', grpcCode: DEADLINE_EXCEEDED, message: `no answer from the CA within ${ms} ms` }),
      );
      const cancel = () => finish({ ok: false, kind: 'unavailable', grpcCode: CANCELLED, message: 'cancelled: the manager stopped' });
      this.cancelAttempt = cancel;
      let pending: Promise<CaResult>;
      try {
        pending = this.options.signer.createCertificate(csrPem, auth, this.options.ttlSeconds);
      } catch (e) {
        pending = Promise.reject(e);
      }
      pending.then(finish, (e: unknown) =>
        finish({ ok: false, kind: 'internal', grpcCode: INTERNAL, message: `the CA client failed: ${errorMessage(e)}` }),
      );
    });
  }

  private onIssued(accepted: AcceptedSvid, auth: CaAuth['kind']): void {
    const now = this.clock.now();
    const { svid, leaf, root } = accepted;
    const renewAt = renewalTime({ notBefore: leaf.notBefore.getTime(), notAfter: svid.expiresAt }, now, this.random(), this.policy.renewal);
    const previous = this.held?.svid.version;
    this.held = { svid, receivedAt: now };
    this.expiryAnnounced = false;
    this.backoff.reset();
    this.consecutiveFailures = 0;
    this.mtlsRefused = false;
    this.phase = { kind: 'waiting', at: renewAt, reason: 'renewal' };
    const bundleChanged = this.bundle.learnFromCa(root, leaf.notAfter.getTime());
    this.log.info(
      { serial: svid.version, ...(previous ? { previousSerial: previous } : {}), auth, notAfter: iso(svid.expiresAt), renewAt: iso(renewAt) },
      previous ? 'SVID renewed' : 'SVID issued',
    );
    if (bundleChanged) this.logBundle('the CA issued under a new root');
    this.metrics.rotated(auth);
    this.metrics.expiry(svid.expiresAt);
    this.notify();
    startupMark('svid_installed');
    this.first.resolve(svid);
  }

  private onFailure(f: Extract<Outcome, { ok: false }>): void {
    const now = this.clock.now();
    this.consecutiveFailures++;
    this.lastFailure = { kind: f.kind, message: f.message, at: now };
    // A CA that no longer accepts our SVID (say, after a root rotation) may still accept the token.
    if (f.auth === 'mtls' && (f.kind === 'unauthenticated' || f.kind === 'permission_denied')) this.mtlsRefused = true;
    const valid = this.currentSvid();
    // The CA's hint stretches the wait, but retryDelay still pulls one attempt in before the SVID expires.
    const delay = retryDelay(now, this.backoff.next(f.retryAfterMs), valid?.expiresAt, this.policy.retry.attemptTimeoutMs);
    this.phase = { kind: 'waiting', at: now + delay, reason: 'retry' };
    this.metrics.rotationFailed(f.kind);
    this.log.warn(
      {
        kind: f.kind,
        ...(f.grpcCode !== undefined ? { grpcCode: f.grpcCode } : {}),
        ...(f.code !== undefined ? { code: f.code } : {}),
        error: f.message,
        auth: f.auth,
        consecutiveFailures: this.consecutiveFailures,
        retryInMs: delay,
        ...(f.retryAfterMs !== undefined ? { caRetryHintMs: f.retryAfterMs } : {}),
        ...(valid ? { servingUntil: iso(valid.expiresAt) } : { serving: false }),
      },
      'could not obtain an SVID from the CA; will retry',
    );
  }

  // ---- helpers --------------------------------------------------------------------------------

  private notify(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (e) {
        this.log.error({ error: errorMessage(e) }, 'an SVID subscriber threw');
      }
    }
  }

  private logBundle(why: string): void {
    const view = this.bundle.view();
    this.log.info({ bundleVersion: view?.version ?? null, roots: this.bundle.roots().length }, `trust bundle changed: ${why}`);
  }
}

/**
 * Calls the hooks given (as methods of their object, so class instances work), skips the missing
 * ones, and contains a hook that throws: metrics must never break rotation.
 */
function guardedMetrics(hooks: Partial<SvidMetrics> | undefined, log: Logger): SvidMetrics {
  const call = <K extends keyof SvidMetrics>(name: K, ...args: Parameters<SvidMetrics[K]>): void => {
    const fn = hooks?.[name] as ((...a: Parameters<SvidMetrics[K]>) => void) | undefined;
    if (!fn) return;
    try {
      fn.apply(hooks, args);
    } catch (e) {
      log.error({ hook: name, error: errorMessage(e) }, 'a metrics hook threw');
    }
  };
  return {
    rotated: (...a) => call('rotated', ...a),
    rotationFailed: (...a) => call('rotationFailed', ...a),
    caRequest: (...a) => call('caRequest', ...a),
    expiry: (...a) => call('expiry', ...a),
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** A promise settled from outside; settling twice is a no-op. Marked handled so an unawaited rejection is not fatal. */
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

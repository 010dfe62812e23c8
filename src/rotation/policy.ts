/**
 * When to renew an SVID, how long to wait after a CA failure, and how to authenticate: pure
 * functions of (now, the certificate's dates, options, a random draw), so they are tested with
 * tables and the manager only schedules what they decide.
 *
 * Reference points (design.md section 5): SPIRE renews at 50 % of the lifetime with ±10 % jitter
 * and retries x1.5 capped at minutes; Istio renews at 50 % ±1 % and warms up from 0.5 s to 60 s;
 * Linkerd keeps a 10 s floor.
 */
import { MeshidError } from '../lib/errors.js';

export interface RenewalOptions {
  /** Renew this fraction of the lifetime (notAfter - notBefore) after notBefore. Default 0.5. */
  readonly renewFraction: number;
  /**
   * Half-width of the jitter window, as a fraction of the lifetime (not of renewFraction): the
   * renewal point is uniform in [renewFraction - jitterFraction, renewFraction + jitterFraction] x
   * lifetime after notBefore. Default 0.1, so a 1 h SVID renews between 24 and 36 minutes.
   */
  readonly jitterFraction: number;
  /**
   * Never renew sooner than this after receiving an SVID (unless it expires sooner; then at
   * renewFraction of what is left), so a CA that issues very short or heavily back-dated
   * certificates cannot drive a tight loop. Default 5 s.
   */
  readonly minDelayMs: number;
  /**
   * Never hold one SVID longer than this before renewing; beyond it the wait is spread over
   * [1 - jitterFraction, 1] x maxDelayMs. Bounds how long a long-lived SVID (Istio allows 90 days)
   * goes without fetching a chain from the CA. Default 24 h.
   */
  readonly maxDelayMs: number;
}

export interface RetryOptions {
  /** First backoff window: the first retry comes after a delay uniform in [0, initialMs). Default 1 s. */
  readonly initialMs: number;
  /** Upper bound of the window. Default 60 s (Istio's warm-up ceiling). */
  readonly maxMs: number;
  /** Window growth per failure. Default 2: windows of 1, 2, 4, ..., 60 s. */
  readonly multiplier: number;
  /** The manager gives up on one CreateCertificate call after this (the client's own deadline should be shorter). Default 30 s. */
  readonly attemptTimeoutMs: number;
}

export interface RotationPolicy {
  readonly renewal: RenewalOptions;
  readonly retry: RetryOptions;
  /**
   * Renew over mTLS with the current SVID only while it stays valid this much longer: room for
   * the handshake, the call and clock skew between us and the CA. Default 60 s.
   */
  readonly mtlsMarginMs: number;
}

export const DEFAULT_ROTATION_POLICY: RotationPolicy = Object.freeze({
  renewal: Object.freeze({ renewFraction: 0.5, jitterFraction: 0.1, minDelayMs: 5_000, maxDelayMs: 24 * 3_600_000 }),
  retry: Object.freeze({ initialMs: 1_000, maxMs: 60_000, multiplier: 2, attemptTimeoutMs: 30_000 }),
  mtlsMarginMs: 60_000,
});

export interface RotationPolicyInput {
  readonly renewal?: Partial<RenewalOptions>;
  readonly retry?: Partial<RetryOptions>;
  readonly mtlsMarginMs?: number;
}

/** Why a renewal point of renewFraction ± jitterFraction (of the lifetime) cannot work, or undefined. */
export function renewalWindowProblem(renewFraction: number, jitterFraction: number): string | undefined {
  const [f, j] = [renewFraction, jitterFraction];
  // Written as !ok so that NaN fails.
  return !(j >= 0 && f - j > 0 && f + j < 1) ? `the renewal point ${f} ± ${j} of the lifetime must stay inside (0, 1)` : undefined;
}

/** Fills defaults and checks the combination; an error names the option. */
export function resolveRotationPolicy(input: RotationPolicyInput = {}): RotationPolicy {
  const renewal = { ...DEFAULT_ROTATION_POLICY.renewal, ...input.renewal };
  const retry = { ...DEFAULT_ROTATION_POLICY.retry, ...input.retry };
  const mtlsMarginMs = input.mtlsMarginMs ?? DEFAULT_ROTATION_POLICY.mtlsMarginMs;
  const { renewFraction: f, jitterFraction: j } = renewal;
  check(f > 0 && f < 1, 'renewFraction', `must be between 0 and 1 exclusive, got ${f}`);
  const window = renewalWindowProblem(f, j);
  check(window === undefined, 'jitterFraction', `(with renewFraction): ${window}`);
  check(renewal.minDelayMs >= 0, 'minDelayMs', `must be >= 0, got ${renewal.minDelayMs}`);
  check(renewal.maxDelayMs > renewal.minDelayMs, 'maxDelayMs', `must exceed minDelayMs, got ${renewal.maxDelayMs}`);
  check(retry.initialMs > 0 && retry.maxMs >= retry.initialMs, 'retry.maxMs', `needs 0 < initialMs <= maxMs, got ${retry.initialMs} and ${retry.maxMs}`);
  check(retry.multiplier >= 1, 'retry.multiplier', `must be >= 1, got ${retry.multiplier}`);
  check(retry.attemptTimeoutMs > 0, 'retry.attemptTimeoutMs', `must be > 0, got ${retry.attemptTimeoutMs}`);
  check(mtlsMarginMs >= 0, 'mtlsMarginMs', `must be >= 0, got ${mtlsMarginMs}`);
  return Object.freeze({ renewal: Object.freeze(renewal), retry: Object.freeze(retry), mtlsMarginMs });
}

function check(ok: boolean, option: string, detail: string): void {
  // Written as !ok so that NaN fails every check.
  if (!ok) throw new MeshidError('rotation_option_invalid', `rotation option ${option} ${detail}`);
}

export interface Validity {
  /** Epoch ms. */
  readonly notBefore: number;
  /** Epoch ms. */
  readonly notAfter: number;
}

/**
 * When to renew an SVID just received at `now` (epoch ms). `random` is one uniform draw in [0, 1):
 * each agent draws its own, so a fleet issued at the same moment spreads its renewals over
 * 2 x jitterFraction of the lifetime instead of hitting the CA in step.
 *
 * The lifetime runs from when the SVID became usable to us, max(notBefore, now): CAs back-date
 * notBefore to absorb clock skew (meshid and Istio by a minute), and counting that minute would
 * renew a short-lived SVID at once.
 */
export function renewalTime(validity: Validity, now: number, random: number, options: RenewalOptions): number {
  const r = Math.min(Math.max(random, 0), 1);
  const start = Math.max(validity.notBefore, Math.min(now, validity.notAfter));
  const lifetime = validity.notAfter - start;
  const fraction = options.renewFraction + options.jitterFraction * (2 * r - 1);
  let delay = start + lifetime * fraction - now;
  if (delay > options.maxDelayMs) delay = options.maxDelayMs * (1 - options.jitterFraction * r);
  const remaining = Math.max(0, validity.notAfter - now);
  const floor = Math.min(options.minDelayMs, remaining * options.renewFraction);
  return Math.round(now + Math.max(delay, floor));
}

/**
 * The wait before retrying after a failure: the backoff's jittered delay, except that while an
 * SVID is still valid the retry is pulled in so that one attempt starts early enough to finish
 * (attemptTimeoutMs) before that SVID expires. Once that point has passed, plain backoff.
 */
export function retryDelay(now: number, backoffMs: number, expiresAt: number | undefined, attemptTimeoutMs: number): number {
  if (expiresAt === undefined) return backoffMs;
  const latestStart = expiresAt - attemptTimeoutMs;
  if (now >= latestStart) return backoffMs;
  return Math.max(1, Math.min(backoffMs, latestStart - now));
}

/**
 * How to authenticate the next request: over mTLS with the current SVID while it stays valid for
 * at least marginMs more and the CA has not just refused it; otherwise with the bearer token.
 * The manager caps marginMs at a quarter of the SVID's lifetime so short-lived SVIDs renew over
 * mTLS too.
 */
export function authKindFor(now: number, expiresAt: number | undefined, marginMs: number, mtlsRefused: boolean): 'mtls' | 'token' {
  if (expiresAt === undefined || mtlsRefused) return 'token';
  return now + marginMs < expiresAt ? 'mtls' : 'token';
}

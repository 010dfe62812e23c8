/**
 * Issuance limits of the reference CA, so one misbehaving workload (or a fleet coming back from an
 * outage) cannot starve everyone else's renewals:
 *
 * - a per-identity token bucket: each SPIFFE ID may have `burst` certificates at once and then
 *   `ratePerMinute` more per minute (a reused bootstrap token no longer yields thousands a second);
 * - a global concurrency limit: at most `maxConcurrent` CreateCertificate calls are worked on at a
 *   time; the next one is shed at once instead of queueing without bound.
 *
 * Both refusals are RESOURCE_EXHAUSTED with a retry hint (milliseconds), which the server sends as
 * the `grpc-retry-pushback-ms` trailer (gRFC A6) and the agent's backoff honours. Pure: time is
 * passed in, nothing here touches timers or sockets.
 */
import { MeshidError } from '../lib/errors.js';

export interface IssuanceLimitsOptions {
  /** Certificates per identity per minute, sustained. 0 disables the per-identity limit. */
  readonly ratePerMinute: number;
  /** Certificates an identity may obtain back to back before the rate applies. */
  readonly burst: number;
  /** CreateCertificate calls worked on at once; beyond it calls are shed. 0 disables the limit. */
  readonly maxConcurrent: number;
  /** Retry hint sent with a shed call (jittered by the agent). */
  readonly shedRetryMs: number;
  /** Identities remembered at most; the least recently seen is forgotten first (memory bound). */
  readonly maxTracked?: number;
}

export type LimitDecision =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'identity_rate' | 'concurrency'; readonly retryAfterMs: number; readonly message: string };

interface Bucket {
  tokens: number;
  at: number;
}

const DEFAULT_MAX_TRACKED = 100_000;

export class IssuanceLimits {
  private readonly buckets = new Map<string, Bucket>();
  private inFlight = 0;
  private readonly maxTracked: number;

  constructor(readonly options: IssuanceLimitsOptions) {
    if (!(options.ratePerMinute >= 0) || !(options.burst >= 1) || !(options.maxConcurrent >= 0) || !(options.shedRetryMs > 0)) {
      throw new RangeError('issuance limits need ratePerMinute >= 0, burst >= 1, maxConcurrent >= 0, shedRetryMs > 0');
    }
    this.maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
  }

  /** Takes a concurrency slot; call release() exactly once when ok. */
  acquire(): LimitDecision {
    const { maxConcurrent, shedRetryMs } = this.options;
    if (maxConcurrent > 0 && this.inFlight >= maxConcurrent) {
      return { ok: false, reason: 'concurrency', retryAfterMs: shedRetryMs, message: `the CA is busy (${maxConcurrent} requests in progress, --max-concurrent-issuance); retry in ${shedRetryMs} ms` };
    }
    this.inFlight++;
    return { ok: true };
  }

  release(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  concurrent(): number {
    return this.inFlight;
  }

  /** Spends one certificate of `identity`'s bucket at `now` (epoch ms), or says when the next one is due. */
  take(identity: string, now: number): LimitDecision {
    const { ratePerMinute, burst } = this.options;
    if (ratePerMinute === 0) return { ok: true };
    const perMs = ratePerMinute / 60_000;
    let bucket = this.buckets.get(identity);
    if (bucket) {
      this.buckets.delete(identity); // re-inserted below: Map order is recency order
      bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * perMs);
      bucket.at = now;
    } else {
      bucket = { tokens: burst, at: now };
    }
    this.buckets.set(identity, bucket);
    if (this.buckets.size > this.maxTracked) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const retryAfterMs = Math.max(1, Math.ceil((1 - bucket.tokens) / perMs));
    return {
      ok: false,
      reason: 'identity_rate',
      retryAfterMs,
      message: `${identity} has used its issuance budget (${burst} at once, then ${ratePerMinute}/min, --issuance-rate); retry in ${retryAfterMs} ms`,
    };
  }
}

/** The trailer that carries the retry hint (gRFC A6's server pushback). */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';

/** A refusal by the limits, carrying the retry hint the server sends as a trailer. */
export class LimitError extends MeshidError {
  constructor(readonly decision: Extract<LimitDecision, { ok: false }>) {
    super(decision.reason === 'concurrency' ? 'ca_busy' : 'issuance_rate_limited', decision.message);
  }
}

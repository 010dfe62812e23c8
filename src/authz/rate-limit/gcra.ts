/**
 * GCRA (generic cell rate algorithm): one number per key, the theoretical arrival time (TAT).
 * A request at `now` is allowed when TAT - now <= tolerance, and then moves TAT on by one
 * interval. From idle, `burst` requests pass at once; after that one per interval. The same
 * arithmetic runs in the Redis script (redis-limiter.ts), in integer microseconds, so a shared
 * counter and a local one decide alike. Pure.
 */
import { RATE_LIMIT_UNITS, type RateLimit } from './policy.js';
import type { RedisFallback } from './redis-url.js';

export interface GcraRate {
  /** Microseconds between requests at the sustained rate. */
  readonly intervalUs: number;
  /** (burst - 1) intervals: how far TAT may run ahead of now. */
  readonly toleranceUs: number;
  /** For the RateLimit-Policy header: quota q over window w seconds. */
  readonly quota: number;
  readonly windowSeconds: number;
}

export function gcraRate(limit: Pick<RateLimit, 'requests' | 'unit' | 'burst'>): GcraRate {
  const windowSeconds = RATE_LIMIT_UNITS[limit.unit];
  const intervalUs = Math.max(1, Math.round((windowSeconds * 1e6) / limit.requests));
  return { intervalUs, toleranceUs: (limit.burst - 1) * intervalUs, quota: limit.requests, windowSeconds };
}

export interface GcraStep {
  readonly allowed: boolean;
  /** TAT to store (unchanged when refused). */
  readonly tatUs: number;
}

/** One request at nowUs against stored TAT (undefined: a key never seen, or forgotten). */
export function gcraStep(storedTatUs: number | undefined, nowUs: number, rate: GcraRate): GcraStep {
  const tat = storedTatUs === undefined || storedTatUs < nowUs ? nowUs : storedTatUs;
  if (tat - nowUs > rate.toleranceUs) return { allowed: false, tatUs: tat };
  return { allowed: true, tatUs: tat + rate.intervalUs };
}

/** What a caller is told after a decision: the fields of the RateLimit and Retry-After headers. */
export interface Quota {
  readonly allowed: boolean;
  /** Requests that would still pass right now. */
  readonly remaining: number;
  /** Seconds until the whole burst is available again (RateLimit t=). */
  readonly resetSeconds: number;
  /** Seconds until the next request would pass (0 when allowed; Retry-After when refused). */
  readonly retryAfterSeconds: number;
  /** Set when the shared counter (Redis) did not answer and this fallback decided instead. */
  readonly fallback?: RedisFallback;
}

/** The quota after a step, from how far TAT runs ahead of now (aheadUs = TAT - now). */
export function quotaOf(allowed: boolean, aheadUs: number, rate: GcraRate): Quota {
  const ahead = Math.max(0, aheadUs);
  const spare = rate.toleranceUs - ahead; // time budget left before the next refusal
  const remaining = spare < 0 ? 0 : Math.floor(spare / rate.intervalUs) + 1;
  return {
    allowed,
    remaining: allowed ? remaining : 0,
    resetSeconds: Math.ceil(ahead / 1e6),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((ahead - rate.toleranceUs) / 1e6)),
  };
}

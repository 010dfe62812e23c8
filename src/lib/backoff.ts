/**
 * Exponential backoff with full jitter (each delay drawn uniformly from [0, cap)), so that a fleet
 * that lost its CA at the same moment does not come back in step. Pure: randomness is injected.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  multiplier: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs) || !(options.multiplier >= 1)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs and multiplier >= 1');
    }
    this.random = options.random ?? Math.random;
  }

  /** The ceiling of the next delay, before jitter. */
  currentCap(): number {
    const { initialMs, maxMs, multiplier } = this.options;
    return Math.min(maxMs, initialMs * multiplier ** this.attempt);
  }

  /**
   * Delay before the next attempt; each call widens the window up to maxMs. With a server's retry
   * hint (gRFC A6 pushback, e.g. a CA shedding load), the delay is never shorter than the hint:
   * hint plus a jitter of up to half the hint (at most the current window), so that the callers a
   * server shed together do not all come back at the same instant.
   */
  next(hintMs?: number): number {
    const cap = this.currentCap();
    this.attempt++;
    const r = this.random();
    if (hintMs !== undefined && hintMs > 0 && Number.isFinite(hintMs)) return Math.max(1, Math.ceil(hintMs + r * Math.min(hintMs / 2, cap)));
    // Never zero: a retry loop that does not yield is a busy loop.
    return Math.max(1, Math.floor(r * cap));
  }

  attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

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

  /** Delay before the next attempt; each call widens the window up to maxMs. */
  next(): number {
    const cap = this.currentCap();
    this.attempt++;
    // Never zero: a retry loop that does not yield is a busy loop.
    return Math.max(1, Math.floor(this.random() * cap));
  }

  attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

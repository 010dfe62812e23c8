/**
 * Rate-limit counters in this process: one GCRA TAT per key, on the injected Clock, in a Map kept
 * in least-recently-used order and capped at maxKeys. Evicting a key forgets its state (its next
 * request gets a full burst), so evictions are counted; a key whose TAT has passed carries no
 * state at all, and such keys are what LRU order evicts first in practice.
 */
import type { Clock } from '../../lib/clock.js';
import { type GcraRate, gcraStep, type Quota, quotaOf } from './gcra.js';

export interface LocalLimiterOptions {
  readonly clock: Clock;
  readonly maxKeys: number;
  /** Called once per evicted key that still held state. */
  readonly onEvict?: () => void;
}

export class LocalLimiter {
  private readonly tats = new Map<string, number>();

  constructor(private readonly options: LocalLimiterOptions) {}

  take(key: string, rate: GcraRate): Quota {
    const nowUs = this.options.clock.now() * 1000;
    const stored = this.tats.get(key);
    const step = gcraStep(stored, nowUs, rate);
    if (step.allowed) {
      if (stored !== undefined) this.tats.delete(key); // re-insert: most recently used last
      this.tats.set(key, step.tatUs);
      this.evict(nowUs);
    }
    return quotaOf(step.allowed, step.tatUs - nowUs, rate);
  }

  /** Keys currently held (for the keys gauge). */
  get size(): number {
    return this.tats.size;
  }

  private evict(nowUs: number): void {
    while (this.tats.size > this.options.maxKeys) {
      const [oldest, tat] = this.tats.entries().next().value as [string, number];
      this.tats.delete(oldest);
      if (tat > nowUs) this.options.onEvict?.();
    }
  }
}

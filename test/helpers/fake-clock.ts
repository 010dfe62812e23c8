import type { Clock, Timer } from '../../src/lib/clock.js';

interface PendingTimer {
  id: number;
  due: number;
  fn: () => void;
}

/**
 * A Clock for tests: time moves only when the test says so. `waitForTimers` lets a test wait
 * until the code under test has armed its timers, so it never races the code it drives.
 */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private readonly timers = new Map<number, PendingTimer>();
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const id = this.nextId++;
    this.timers.set(id, { id, due: this.current + Math.max(0, ms), fn });
    this.notifyWaiters();
    return { cancel: () => void this.timers.delete(id) };
  }

  /** Number of armed timers. */
  pendingCount(): number {
    return this.timers.size;
  }

  /** Due time of the earliest armed timer, if any. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.timers.values()) if (min === undefined || t.due < min) min = t.due;
    return min;
  }

  /** Resolves once at least `count` timers are armed. */
  waitForTimers(count = 1): Promise<void> {
    if (this.timers.size >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /**
   * Moves time forward by ms, firing every timer that falls due, in due order, at its due time.
   * Awaits a macrotask turn after each timer so promise chains it starts can settle and arm new
   * timers, which fire too if they fall inside the window.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance needs ms >= 0, got ${ms}; use jump() to step the clock back`);
    // Let work already under way (pending promise callbacks) arm its timers before time moves;
    // otherwise they would be armed after the jump and fall due later than the test intended.
    await settle();
    const target = this.current + ms;
    for (;;) {
      const next = this.earliest();
      if (!next || next.due > target) break;
      this.timers.delete(next.id);
      this.current = Math.max(this.current, next.due);
      next.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  /** Advances to the earliest armed timer and fires it (and anything due at the same time). */
  async advanceToNext(): Promise<void> {
    const due = this.nextDue();
    if (due !== undefined) await this.advance(Math.max(0, due - this.current));
  }

  /**
   * Steps the wall clock without monotonic time passing: what a suspended VM or an NTP step looks
   * like to a process. Node's timers run on the monotonic clock, so armed timers keep their
   * remaining time (their due times move by ms) and none fires because of the jump; only code
   * that re-reads now() notices.
   */
  jump(ms: number): void {
    this.current += ms;
    for (const t of this.timers.values()) t.due += ms;
  }

  private earliest(): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.timers.values()) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    return best;
  }

  private notifyWaiters(): void {
    const ready = this.waiters.filter((w) => this.timers.size >= w.count);
    this.waiters = this.waiters.filter((w) => this.timers.size < w.count);
    for (const w of ready) w.resolve();
  }
}

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Time, injected. Everything that schedules work (rotation, backoff, debouncing) takes a Clock so
 * tests can drive it with FakeClock instead of waiting on the wall clock.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock time in milliseconds since the epoch. */
  now(): number;
  /** Runs fn once after ms milliseconds (or later, if the process is suspended). */
  setTimer(ms: number, fn: () => void): Timer;
}

// setTimeout clamps delays above 2^31-1 ms to 1 ms; longer waits are chained.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    let handle: NodeJS.Timeout;
    const arm = (remaining: number) => {
      const step = Math.min(Math.max(0, remaining), MAX_TIMEOUT_MS);
      handle = setTimeout(() => (remaining > step ? arm(remaining - step) : fn()), step);
      handle.unref?.();
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

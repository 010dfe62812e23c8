/** A FakeClock, an in-process CA and an SVID manager wired together, with logs captured. */
import type { ExecutionContext } from 'ava';
import { FakeClock } from '../helpers/fake-clock.js';
import { SvidManager, type SvidManagerOptions } from '../../src/rotation/manager.js';
import { InProcessSigner, type InProcessSignerOptions } from './in-process-signer.js';
import { captureLogs, type LogLine } from '../helpers/logs.js';
export type { LogLine };

export const ID = 'spiffe://example.org/ns/shop/sa/frontend';
export const TOKEN = 's3cr3t-token-1';
export const TOKEN_2 = 's3cr3t-token-2';
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

import { seededRandom } from '../helpers/seeded-random.js';

export { seededRandom };


export function capturedLogger(): { logger: ReturnType<typeof captureLogs>['logger']; lines: LogLine[]; raw: string[] } {
  return captureLogs();
}

export interface Harness {
  clock: FakeClock;
  signer: InProcessSigner;
  manager: SvidManager;
  logs: LogLine[];
  rawLogs: string[];
  /** How many times the manager read the token. */
  tokenReads(): number;
  /** What the next token read returns (a string, or an Error to throw). */
  setToken(value: string | Error): void;
  /** Number of subscriber notifications so far, and the clock time of each. */
  notifications: number[];
}

export function harness(
  t: ExecutionContext,
  o: { signer?: Partial<InProcessSignerOptions>; manager?: Partial<SvidManagerOptions>; clock?: FakeClock; signerInstance?: InProcessSigner } = {},
): Harness {
  const clock = o.clock ?? new FakeClock();
  const signer = o.signerInstance ?? new InProcessSigner(clock, { tokens: { [TOKEN]: ID, [TOKEN_2]: ID }, ...o.signer });
  const { logger, lines, raw } = capturedLogger();
  let reads = 0;
  let token: string | Error = TOKEN;
  const manager = new SvidManager({
    spiffeId: ID,
    signer,
    token: async () => {
      reads++;
      if (token instanceof Error) throw token;
      return token;
    },
    clock,
    logger,
    random: seededRandom(42),
    ...o.manager,
  });
  const notifications: number[] = [];
  manager.subscribe(() => notifications.push(clock.now()));
  t.teardown(() => manager.stop());
  return {
    clock,
    signer,
    manager,
    logs: lines,
    rawLogs: raw,
    tokenReads: () => reads,
    setToken: (v) => void (token = v),
    notifications,
  };
}

/** Starts the manager and waits for its first SVID (the in-process CA answers without timers). */
export async function started(h: Harness) {
  h.manager.start();
  const svid = await h.manager.firstSvid();
  return svid;
}

/** Advances the clock in steps until cond holds or maxMs passes; returns whether it held. */
export async function advanceUntil(clock: FakeClock, cond: () => boolean, maxMs: number): Promise<boolean> {
  const end = clock.now() + maxMs;
  while (!cond()) {
    const next = clock.nextDue();
    if (next === undefined || next > end) {
      await clock.advance(end - clock.now());
      return cond();
    }
    await clock.advance(Math.max(0, next - clock.now()));
  }
  return true;
}

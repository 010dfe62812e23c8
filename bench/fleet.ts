/**
 * bench:fleet: a discrete-event simulation of a fleet of agents renewing 1 h SVIDs against one CA,
 * on simulated time (no sockets, no timers). What it drives is the real code: renewalTime() and
 * retryDelay() from src/rotation/policy.ts with the default rotation policy, the Backoff of
 * src/lib/backoff.ts (retry hints included), and the CA's IssuanceLimits concurrency gate from
 * src/ca/limits.ts. What it models: the CA as one FIFO server of --ca-rate certificates/s (the
 * issuance rate of one meshid ca process; bench:ca measures it), an outage as every call failing
 * UNAVAILABLE at once (connection refused), a shed call as RESOURCE_EXHAUSTED with the
 * --shed-retry hint.
 *
 * For 10,000 and 100,000 agents and outages of 0, 5, 15 and 30 minutes it reports the steady CSR
 * rate, the peak CSR rate after the CA returns (and its ratio to the steady rate, the baseline of
 * the same run), shed calls, the time until every agent whose renewal fell due holds a fresh SVID,
 * and how many agents ever reach the expiry of the SVID they hold.
 *
 *   node dist/bench/fleet.js [--agents 10000,100000] [--outages 0,5,15,30] [--ca-rate 2000]
 *                            [--max-concurrent 256] [--shed-retry-ms 2000] [--seed 1]
 */
import { parseArgs } from 'node:util';
import { IssuanceLimits } from '../src/ca/limits.js';
import { seededRandom } from '../test/helpers/seeded-random.js';
import { Backoff } from '../src/lib/backoff.js';
import { DEFAULT_ROTATION_POLICY, renewalTime, retryDelay } from '../src/rotation/policy.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000,100000' },
    outages: { type: 'string', default: '0,5,15,30' },
    'ca-rate': { type: 'string', default: '2000' },
    'max-concurrent': { type: 'string', default: '256' },
    'shed-retry-ms': { type: 'string', default: '2000' },
    seed: { type: 'string', default: '1' },
  },
});
const AGENT_COUNTS = values.agents.split(',').map(Number);
const OUTAGES_MIN = values.outages.split(',').map(Number);
const CA_RATE = Number(values['ca-rate']);
const MAX_CONCURRENT = Number(values['max-concurrent']);
const SHED_RETRY_MS = Number(values['shed-retry-ms']);
const SEED = Number(values.seed);

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const LIFETIME = HOUR;
const BACKDATE = MINUTE; // meshid ca back-dates notBefore by 60 s
const OUTAGE_AT = 2 * HOUR; // after the fleet reached its steady state
const END = OUTAGE_AT + 30 * MINUTE + 2 * HOUR;
const policy = DEFAULT_ROTATION_POLICY;


/** A binary min-heap of (time, agent, kind) in parallel typed arrays. */
class EventQueue {
  private t = new Float64Array(1024);
  private a = new Int32Array(1024);
  private k = new Uint8Array(1024);
  size = 0;
  push(time: number, agent: number, kind: number): void {
    if (this.size === this.t.length) {
      const grow = <T extends Float64Array | Int32Array | Uint8Array>(x: T): T => {
        const y = new (x.constructor as new (n: number) => T)(x.length * 2);
        y.set(x);
        return y;
      };
      this.t = grow(this.t);
      this.a = grow(this.a);
      this.k = grow(this.k);
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p]! <= time) break;
      this.t[i] = this.t[p]!;
      this.a[i] = this.a[p]!;
      this.k[i] = this.k[p]!;
      i = p;
    }
    this.t[i] = time;
    this.a[i] = agent;
    this.k[i] = kind;
  }
  /** Pops into out; returns false when empty. */
  pop(out: { time: number; agent: number; kind: number }): boolean {
    if (this.size === 0) return false;
    out.time = this.t[0]!;
    out.agent = this.a[0]!;
    out.kind = this.k[0]!;
    const n = --this.size;
    const time = this.t[n]!;
    const agent = this.a[n]!;
    const kind = this.k[n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.t[c + 1]! < this.t[c]!) c++;
      if (this.t[c]! >= time) break;
      this.t[i] = this.t[c]!;
      this.a[i] = this.a[c]!;
      this.k[i] = this.k[c]!;
      i = c;
    }
    this.t[i] = time;
    this.a[i] = agent;
    this.k[i] = kind;
    return true;
  }
}

const ATTEMPT = 0;
const COMPLETE = 1;

interface Result {
  agents: number;
  outage_min: number;
  steady_csr_per_s: number;
  peak_csr_per_s: number;
  peak_issued_per_s: number;
  peak_ratio: number;
  shed: number;
  failed_during_outage: number;
  recovery_s: number | null;
  agents_expired: number;
  events: number;
  wall_ms: number;
}

function simulate(n: number, outageMin: number): Result {
  const started = performance.now();
  const random = seededRandom(SEED * 7919 + n + outageMin);
  const outageEnd = OUTAGE_AT + outageMin * MINUTE;
  const limits = new IssuanceLimits({ ratePerMinute: 0, burst: 1, maxConcurrent: MAX_CONCURRENT, shedRetryMs: SHED_RETRY_MS });
  const { initialMs, maxMs, multiplier, attemptTimeoutMs } = policy.retry;
  const backoffs: Backoff[] = [];
  const notAfter = new Float64Array(n);
  const dueSince = new Float64Array(n).fill(NaN); // when the pending renewal fell due (NaN: none pending)
  const expired = new Uint8Array(n);
  const q = new EventQueue();

  // Steady state at t = 0: each agent holds an SVID issued some time in the last renewal interval.
  for (let i = 0; i < n; i++) {
    backoffs.push(new Backoff({ initialMs, maxMs, multiplier, random }));
    const issued = -random() * 0.6 * LIFETIME;
    notAfter[i] = issued + LIFETIME;
    const at = renewalTime({ notBefore: issued - BACKDATE, notAfter: notAfter[i]! }, issued, random(), policy.renewal);
    q.push(Math.max(at, random() * MINUTE), i, ATTEMPT);
  }

  const serviceMs = SECOND / CA_RATE;
  let caFreeAt = 0;
  const seconds = Math.ceil(END / SECOND) + 1;
  const attemptsPerSecond = new Int32Array(seconds);
  const issuedPerSecond = new Int32Array(seconds);
  const bump = (m: Int32Array, t: number) => void m[Math.floor(t / SECOND)]!++;
  const attemptAt = new Float64Array(n);
  let steadyAttempts = 0;
  let shed = 0;
  let failedDuringOutage = 0;
  let pending = 0; // agents whose renewal fell due during the outage and are not yet served
  let lastServedAt = outageEnd; // when the last agent whose renewal fell due in the outage was served
  let events = 0;
  const ev = { time: 0, agent: 0, kind: 0 };

  const fail = (i: number, now: number, hint?: number) => {
    const valid = now < notAfter[i]! ? notAfter[i] : undefined;
    q.push(now + retryDelay(now, backoffs[i]!.next(hint), valid, attemptTimeoutMs), i, ATTEMPT);
  };

  while (q.pop(ev)) {
    const { time: now, agent: i, kind } = ev;
    if (now > END) break;
    events++;
    if (now >= notAfter[i]! && !expired[i]) expired[i] = 1;
    if (kind === ATTEMPT) {
      if (Number.isNaN(dueSince[i]!)) {
        dueSince[i] = now;
        if (now >= OUTAGE_AT && now < outageEnd) pending++;
      }
      bump(attemptsPerSecond, now);
      if (now >= HOUR && now < OUTAGE_AT) steadyAttempts++;
      if (now >= OUTAGE_AT && now < outageEnd) {
        failedDuringOutage++;
        fail(i, now);
        continue;
      }
      attemptAt[i] = now;
      const slot = limits.acquire();
      if (!slot.ok) {
        shed++;
        fail(i, now, slot.retryAfterMs);
        continue;
      }
      caFreeAt = Math.max(caFreeAt, now) + serviceMs;
      q.push(caFreeAt, i, COMPLETE);
    } else {
      limits.release();
      if (now - attemptAt[i]! > attemptTimeoutMs) throw new Error('the model lets a call queue past the attempt timeout; lower --max-concurrent');
      if (now >= notAfter[i]!) expired[i] = 1;
      bump(issuedPerSecond, now);
      notAfter[i] = now + LIFETIME;
      backoffs[i]!.reset();
      if (dueSince[i]! >= OUTAGE_AT && dueSince[i]! < outageEnd) {
        pending--;
        if (pending === 0) lastServedAt = now;
      }
      dueSince[i] = NaN;
      q.push(renewalTime({ notBefore: now - BACKDATE, notAfter: notAfter[i]! }, now, random(), policy.renewal), i, ATTEMPT);
    }
  }

  const peakAfter = (m: Int32Array) => {
    let peak = 0;
    for (let s = OUTAGE_AT / SECOND; s < m.length; s++) if (m[s]! > peak) peak = m[s]!;
    return peak;
  };
  const steady = steadyAttempts / ((OUTAGE_AT - HOUR) / SECOND);
  const peak = peakAfter(attemptsPerSecond);
  let expiredCount = 0;
  for (let i = 0; i < n; i++) expiredCount += expired[i]!;
  return {
    agents: n,
    outage_min: outageMin,
    steady_csr_per_s: round(steady),
    peak_csr_per_s: peak,
    peak_issued_per_s: peakAfter(issuedPerSecond),
    peak_ratio: round(peak / steady),
    shed,
    failed_during_outage: failedDuringOutage,
    recovery_s: outageMin === 0 ? 0 : pending === 0 ? round((lastServedAt - outageEnd) / SECOND) : null,
    agents_expired: expiredCount,
    events,
    wall_ms: Math.round(performance.now() - started),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

console.log(`bench:fleet: simulated fleet, 1 h SVIDs, default rotation policy (renew at 50 % ± 10 %, backoff 1 s x2 to 60 s), real policy/backoff/limits code`);
console.log(`  CA model: one FIFO server of ${CA_RATE} certificates/s, --max-concurrent-issuance ${MAX_CONCURRENT}, shed hint ${SHED_RETRY_MS} ms; outage starts at t=2h`);
const results: Result[] = [];
for (const n of AGENT_COUNTS) {
  for (const outage of OUTAGES_MIN) {
    const r = simulate(n, outage);
    results.push(r);
    console.log(
      `  ${String(n).padStart(7)} agents  outage ${String(outage).padStart(2)} min:  steady ${r.steady_csr_per_s} CSR/s  peak ${r.peak_csr_per_s} CSR/s (x${r.peak_ratio})  ` +
        `peak issued ${r.peak_issued_per_s}/s  shed ${r.shed}  failed in outage ${r.failed_during_outage}  ` +
        `all fresh ${r.recovery_s === null ? 'NEVER' : `${r.recovery_s} s`} after the CA returned  expired ${r.agents_expired}  (${r.events} events, ${r.wall_ms} ms)`,
    );
  }
}
const halfLifeOk = results.filter((r) => r.outage_min * MINUTE < LIFETIME / 2).every((r) => r.agents_expired === 0);
console.log(`  no agent reached expiry for outages shorter than half a lifetime: ${halfLifeOk ? 'yes' : 'NO'}`);
console.log(JSON.stringify({ bench: 'fleet', ca_rate: CA_RATE, max_concurrent: MAX_CONCURRENT, shed_retry_ms: SHED_RETRY_MS, half_life_outages_without_expiry: halfLifeOk, results }));

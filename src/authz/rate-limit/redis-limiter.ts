/**
 * Rate-limit counters shared through Redis, for gateways with several replicas: one EVALSHA per
 * decision runs the GCRA step of gcra.ts atomically on the server, on Redis's own clock (TIME),
 * so replicas with skewed clocks still share one limit. Commands time out well inside Envoy's
 * ext_authz timeout and are never queued while disconnected; when Redis cannot answer, the
 * configured fallback decides: `local` (each replica enforces the limit on its own counters),
 * `open` (allow) or `closed` (refuse with 503).
 */
import { Redis } from 'ioredis';
import { errorMessage } from '../../lib/errors.js';
import type { GcraRate, Quota } from './gcra.js';
import { quotaOf } from './gcra.js';
import { type RedisFallback, redisTarget } from './redis-url.js';

export interface RedisLimiterOptions {
  /** redis://[user:pass@]host:port[/db], rediss://..., or unix:///path/to/redis.sock */
  readonly url: string;
  readonly timeoutMs: number;
  readonly fallback: RedisFallback;
  /** Used when fallback is `local`. */
  readonly local: { take(key: string, rate: GcraRate): Quota };
  readonly keyPrefix?: string;
  /** Redis went away or came back: logged once per change. */
  readonly onStateChange?: (up: boolean, detail: string) => void;
}

/** The degraded answers, when Redis did not answer in time. */

const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
if tat - now > tolerance then return {0, tat - now} end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {1, tat - now}
`;

type GcraClient = Redis & { meshidGcra(key: string, intervalUs: number, toleranceUs: number): Promise<[number, number]> };

export class RedisLimiter {
  private readonly client: GcraClient;
  private up = true;
  private readonly prefix: string;

  constructor(private readonly options: RedisLimiterOptions) {
    this.prefix = options.keyPrefix ?? 'meshid:rl:';
    this.client = new Redis({
      ...redisTarget(options.url),
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    }) as GcraClient;
    this.client.defineCommand('meshidGcra', { numberOfKeys: 1, lua: GCRA_SCRIPT });
    // ioredis reports connection problems as events; without a listener they would crash the process.
    this.client.on('error', (e: unknown) => this.state(false, errorMessage(e)));
    this.client.on('ready', () => this.state(true, 'connected'));
  }

  async take(key: string, rate: GcraRate): Promise<Quota> {
    try {
      const [allowed, aheadUs] = await this.client.meshidGcra(this.prefix + key, rate.intervalUs, rate.toleranceUs);
      return quotaOf(allowed === 1, aheadUs, rate);
    } catch (e) {
      this.state(false, errorMessage(e));
      return this.fallback(key, rate);
    }
  }

  /**
   * Waits (at most timeoutMs) for the first connection, so that decisions right after start-up
   * use the shared counters instead of the fallback; resolves false if Redis did not answer.
   */
  connected(timeoutMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  async close(): Promise<void> {
    this.client.disconnect(false);
  }

  private fallback(key: string, rate: GcraRate): Quota {
    switch (this.options.fallback) {
      case 'local':
        return { ...this.options.local.take(key, rate), fallback: 'local' };
      case 'open':
        return { allowed: true, remaining: 0, resetSeconds: 0, retryAfterSeconds: 0, fallback: 'open' };
      case 'closed':
        return { allowed: false, remaining: 0, resetSeconds: 0, retryAfterSeconds: 1, fallback: 'closed' };
    }
  }

  private state(up: boolean, detail: string): void {
    if (up === this.up) return;
    this.up = up;
    this.options.onStateChange?.(up, detail);
  }
}

/**
 * The --rate-limit-redis URL forms, parsed into ioredis's connection options (a plain object, so
 * that option parsing does not load the Redis client). Pure.
 */
import { quoteBounded } from '../../lib/quote.js';
import { MeshidError } from '../../lib/errors.js';

/** What decides when Redis cannot answer in time. */
export type RedisFallback = 'local' | 'open' | 'closed';
export const REDIS_FALLBACKS: readonly RedisFallback[] = ['local', 'open', 'closed'];

export interface RedisTarget {
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly db?: number;
  readonly tls?: Record<string, never>;
  readonly username?: string;
  readonly password?: string;
}

/** The connection part of ioredis's options from our URL forms. */
export function redisTarget(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MeshidError('bad_redis_url', `expected redis://host:port, rediss://host:port or unix:///path, got ${quoteBounded(url)}`);
  }
  const auth = {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
  if (u.protocol === 'unix:') {
    if (!u.pathname || u.pathname === '/') throw new MeshidError('bad_redis_url', `unix: URL needs a socket path, got ${quoteBounded(url)}`);
    return { path: decodeURIComponent(u.pathname), ...auth };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new MeshidError('bad_redis_url', `unsupported scheme ${u.protocol} in ${quoteBounded(url)}: use redis://, rediss:// or unix://`);
  }
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new MeshidError('bad_redis_url', `database must be a number, got ${quoteBounded(u.pathname.slice(1))}`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    ...auth,
  };
}

/**
 * RateLimitPolicy: meshid's own resource in the policy directory, naming who a quota applies to
 * with an Istio rule (the same from/to/when fields and matching as AuthorizationPolicy) and what
 * the quota is. Limits are checked after authorization, in load order (file path, document,
 * list order); the first limit whose rule matches an allowed request applies. Pure.
 */
import type { PolicyOrigin, Rule } from '../policy.js';

export const RATE_LIMIT_API_VERSION = 'meshid.dev/v1alpha1';
export const RATE_LIMIT_KIND = 'RateLimitPolicy';

export type RateLimitUnit = 'second' | 'minute' | 'hour';
export const RATE_LIMIT_UNITS: Readonly<Record<RateLimitUnit, number>> = { second: 1, minute: 60, hour: 3600 };

/** What one counter is shared by: each principal (the default), each namespace, each source IP, or everyone. */
export type RateLimitPartition = 'principal' | 'namespace' | 'sourceIp' | 'shared';
export const RATE_LIMIT_PARTITIONS: readonly RateLimitPartition[] = ['principal', 'namespace', 'sourceIp', 'shared'];

export interface RateLimit {
  /** Unique within its policy; `<policy id>/<name>` names the limit in headers, logs and metrics. */
  readonly name: string;
  readonly match: Rule;
  /** requests per unit, sustained. */
  readonly requests: number;
  readonly unit: RateLimitUnit;
  /** Requests that may arrive at once after an idle period (default: requests). */
  readonly burst: number;
  readonly partition: RateLimitPartition;
}

export interface RateLimitPolicy {
  readonly name: string;
  readonly namespace?: string;
  /** "namespace/name", or "name" without a namespace. */
  readonly id: string;
  readonly limits: readonly RateLimit[];
  readonly origin: PolicyOrigin;
}

export function rateLimitId(policy: RateLimitPolicy, limit: RateLimit): string {
  return `${policy.id}/${limit.name}`;
}

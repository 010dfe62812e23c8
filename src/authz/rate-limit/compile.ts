/**
 * RateLimitPolicy documents to matchers: each limit's rule is compiled by the AuthorizationPolicy
 * compiler (handed in, so matching is the same code), and each limit gets its counter-key
 * function. A key names the policy, the limit and the partition value, so it survives a reload
 * that leaves the limit in place: counters are kept across policy edits. Pure.
 */
import type { FactNeeds, RequestFacts } from '../facts.js';
import type { Rule } from '../policy.js';
import { type GcraRate, gcraRate } from './gcra.js';
import { type RateLimit, rateLimitId, type RateLimitPartition, type RateLimitPolicy } from './policy.js';

export interface CompiledRateLimit {
  /** `<policy id>/<limit name>`. */
  readonly id: string;
  readonly policy: RateLimitPolicy;
  readonly limit: RateLimit;
  readonly rate: GcraRate;
  /** The limit's name as an sf-string and its RateLimit-Policy value, built once per compile. */
  readonly headerName: string;
  readonly policyHeader: string;
  readonly match: (f: RequestFacts) => boolean;
  /** The counter this request counts against. */
  readonly keyOf: (f: RequestFacts) => string;
}

type MutableNeeds = { -readonly [K in keyof FactNeeds]: FactNeeds[K] };

export function compileRateLimits(
  policies: readonly RateLimitPolicy[],
  compileRule: (rule: Rule, policy: RateLimitPolicy) => (f: RequestFacts) => boolean,
  needs: MutableNeeds,
): readonly CompiledRateLimit[] {
  const out: CompiledRateLimit[] = [];
  for (const policy of policies) {
    for (const limit of policy.limits) {
      const id = rateLimitId(policy, limit);
      const rate = gcraRate(limit);
      const headerName = JSON.stringify(id);
      out.push(
        Object.freeze({
          id,
          policy,
          limit,
          rate,
          headerName,
          policyHeader: `${headerName};q=${rate.quota};w=${rate.windowSeconds}`,
          match: compileRule(limit.match, policy),
          keyOf: keyFunction(id, limit.partition, needs),
        }),
      );
    }
  }
  return Object.freeze(out);
}

/** The first limit whose rule matches, in load order. */
export function firstRateLimit(limits: readonly CompiledRateLimit[], f: RequestFacts): CompiledRateLimit | undefined {
  for (let i = 0; i < limits.length; i++) if (limits[i]!.match(f)) return limits[i];
  return undefined;
}

function keyFunction(id: string, partition: RateLimitPartition, needs: MutableNeeds): (f: RequestFacts) => string {
  switch (partition) {
    case 'principal':
      // Plaintext requests (no principal) share one counter.
      return (f) => `${id}|principal|${f.principal ?? ''}`;
    case 'namespace':
      needs.namespaces = true;
      return (f) => `${id}|namespace|${f.namespaces[0] ?? ''}`;
    case 'sourceIp':
      needs.sourceIp = true;
      // The parsed form: 10.1.2.3 and ::ffff:10.1.2.3 are one client.
      return (f) => `${id}|ip|${f.sourceIp ? `${f.sourceIp.v4 ? 4 : 6}:${f.sourceIp.words.join('.')}` : ''}`;
    case 'shared':
      return () => `${id}|shared`;
  }
}

/**
 * What the ext_authz service reports for counting. src/cli/agent-metrics.ts (authzHooks) maps it
 * to Prometheus; without it the no-op default costs nothing.
 */
import type { DecisionReason } from './engine.js';
import type { PeerCertificateStatus } from './facts.js';

export interface AuthzMetrics {
  /** One per Check answered; seconds is the handler's own time. */
  decision(outcome: 'allow' | 'deny', reason: DecisionReason, policy: string | undefined, seconds: number, dryRunChanged: boolean): void;
  /** A changed policy directory was loaded (and swapped in) or rejected (the last good set stays). */
  policyReload(result: 'loaded' | 'rejected'): void;
  /** The policy set in force: its revision and number of policies. */
  policySet(revision: string, policies: number): void;
  /** A peer certificate sent by Envoy, by what its check found (cache hits included). */
  peerCertificate(status: PeerCertificateStatus['status']): void;
  /** A partner's certificate (by SHA-256) was presented: for the soonest not-after per partner (cache hits included). */
  partnerCertificate(partner: string, sha256: string, notAfter: number): void;
  /** A rate limit applied: by limit, result, and which counter answered. */
  rateLimit(limit: string, result: 'allowed' | 'limited' | 'unavailable', counter: RateLimitCounter): void;
  /** A local counter that still held state was forgotten to stay under --rate-limit-max-keys. */
  rateLimitEviction(): void;
  /** The shared counter store (Redis) became reachable (true) or not (false). */
  rateLimitStore(up: boolean): void;
  /** A request's JWT: where it was verified, and what came of it (bound: valid and certificate-bound). */
  requestToken(source: 'bearer' | 'jwt_authn', status: 'valid' | 'bound' | 'invalid' | 'not_bound'): void;
}

/** Which store answered: the agent's own counters, Redis, or the fallback when Redis did not. */
export type RateLimitCounter = 'local' | 'redis' | 'fallback_local' | 'fallback_open' | 'fallback_closed';

export const noopAuthzMetrics: AuthzMetrics = {
  decision() {},
  policyReload() {},
  policySet() {},
  peerCertificate() {},
  partnerCertificate() {},
  rateLimit() {},
  rateLimitEviction() {},
  rateLimitStore() {},
  requestToken() {},
};

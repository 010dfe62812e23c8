/**
 * The decision, exactly in Istio's order: (CUSTOM is refused at load) DENY, then ALLOW; no ALLOW
 * policy means allow, ALLOW policies and no match means deny; AUDIT never changes the outcome;
 * dry-run policies are evaluated and reported, never enforced. `evaluate` is pure and returns what
 * decided along with the outcome.
 */
import { type CompiledPolicySet, firstMatch, type RuleRef } from './compile.js';
import { type AuthzInput, RequestFacts } from './facts.js';
import { defaultDenyDetail, type NearMiss, nearestAllowRules } from './explain.js';
import { type CompiledRateLimit, firstRateLimit } from './rate-limit/compile.js';
import type { Quota } from './rate-limit/gcra.js';

export type DecisionReason =
  /** A DENY rule matched. */
  | 'deny_policy_matched'
  /** An ALLOW rule matched and no DENY rule did. */
  | 'allow_policy_matched'
  /** ALLOW policies exist and none matched. */
  | 'no_allow_policy_matched'
  /** No ALLOW policy exists and no DENY rule matched. */
  | 'no_allow_policies'
  /** The peer certificate Envoy sent could not be parsed or failed verification. */
  | 'peer_certificate_invalid'
  /** Set by the ext_authz handler: the peer certificate's serial or the peer's SPIFFE ID is revoked (the CA's CRL). */
  | 'revoked'
  /** The peer certificate verified against a partner CA (--partner-cas) but no mapping of it names it. */
  | 'peer_certificate_unmapped'
  /** The peer certificate's identity differs from the principal Envoy reported. */
  | 'peer_principal_mismatch'
  /** The path has escaped slashes or backslashes (denied unless configured otherwise). */
  | 'bad_path'
  /** The :authority does not parse as host[:port] (user info, two ports, spaces, ...). */
  | 'bad_authority'
  /** Set by the ext_authz handler: the CheckRequest lacks what a decision needs. */
  | 'malformed_request'
  /** Set by the ext_authz handler: no valid policy set has been loaded yet. */
  | 'no_valid_policy_set'
  /** Set by the ext_authz handler: an unexpected failure, answered with a deny. */
  | 'internal_error'
  /** The request carried a bearer token that does not verify (RequestAuthentication, --jwt-rules): 401. */
  | 'jwt_invalid'
  /** RFC 8705: the token is bound to a certificate the request was not made with: 401. */
  | 'token_not_bound'
  /** Allowed by the policies, but over a RateLimitPolicy limit: answered 429. */
  | 'rate_limited'
  /** A rate limit applied and its shared counter (Redis) could not answer, with fallback closed: 503. */
  | 'rate_limit_unavailable';

export interface Decision {
  readonly allow: boolean;
  readonly reason: DecisionReason;
  /** The policy set revision the decision was made under ('' when none was loaded). */
  readonly revision: string;
  /** The DENY or ALLOW rule that decided; absent for default outcomes. */
  readonly rule: RuleRef | undefined;
  /** The first AUDIT rule that matched; the outcome is the same either way. */
  readonly audit: RuleRef | undefined;
  /** Present when dry-run policies exist: what the outcome would be if they were enforced. */
  readonly dryRun: DryRunOutcome | undefined;
  /** Extra words for the operator (certificate failures, malformed requests). */
  readonly detail: string | undefined;
  /** An allowed request that a rate limit applies to: the limit and the counter it counts against. */
  readonly rateLimit?: RateLimitMatch | undefined;
  /** A default deny (no_allow_policy_matched): the nearest ALLOW rules and what each failed. */
  readonly nearest?: readonly NearMiss[] | undefined;
}

export interface RateLimitMatch {
  readonly limit: CompiledRateLimit;
  readonly key: string;
  /** Filled in by the handler once the counter answered. */
  readonly quota?: Quota;
}

export interface DryRunOutcome {
  readonly allow: boolean;
  readonly reason: DecisionReason;
  readonly rule: RuleRef | undefined;
  readonly audit: RuleRef | undefined;
  /** Whether enforcing the dry-run policies would change allow/deny. */
  readonly changed: boolean;
}

export interface EvaluateOptions {
  /** Name the nearest ALLOW rules on a default deny (default true; false only to measure its cost). */
  readonly explain?: boolean;
}

export function evaluate(set: CompiledPolicySet, input: AuthzInput, options?: EvaluateOptions): Decision {
  const revision = set.revision;
  let principal = input.principal || undefined;
  const cert = input.peerCertificate;
  if (cert) {
    if (cert.status === 'invalid') return denyDecision('peer_certificate_invalid', revision, cert.reason);
    if (cert.status === 'unmapped') return denyDecision('peer_certificate_unmapped', revision, cert.reason);
    // A partner CA's certificate: Envoy's principal is its URI SAN, DNS SAN or subject, whatever
    // the partner's CA put there; the mapping decides who it is.
    if (cert.status === 'mapped') principal = cert.spiffeId;
    const certId = cert.status === 'verified' ? cert.spiffeId : cert.status === 'unverified' ? cert.uriSan : undefined;
    if (certId !== undefined) {
      if (principal !== undefined && principal !== certId) {
        return denyDecision('peer_principal_mismatch', revision, `the peer certificate is for ${certId} but Envoy reported principal ${principal}`);
      }
      if (cert.status === 'verified') principal = certId;
    }
  }
  const f = new RequestFacts(input, principal, set.needs);
  if (f.problem) return denyDecision(f.problem.reason, revision, f.problem.detail);

  const deny = firstMatch(set.deny, f);
  const allow = deny || set.allow.policies === 0 ? undefined : firstMatch(set.allow, f);
  const audit = firstMatch(set.audit, f);
  const rule = deny ?? allow;
  const allowed = !deny && (allow !== undefined || set.allow.policies === 0);
  const limit = allowed && set.rateLimits.length > 0 ? firstRateLimit(set.rateLimits, f) : undefined;
  // Only on the default-deny path: an allow never pays for the explanation.
  const nearest = !allowed && !deny && options?.explain !== false ? nearestAllowRules(set.allow, f) : undefined;
  return {
    allow: allowed,
    reason: reasonOf(deny, set.allow.policies, allow),
    revision,
    rule: rule?.ref,
    audit: audit?.ref,
    dryRun: set.dryRun ? dryRunOutcome(set, f, allowed, deny, allow, audit) : undefined,
    detail: nearest ? defaultDenyDetail(nearest, set.allow.policies) : undefined,
    // Always set (undefined without a limit): one object shape for every decision.
    rateLimit: limit ? { limit, key: limit.keyOf(f) } : undefined,
    nearest,
  };
}

/** The decision after its rate limit's counter answered: unchanged when allowed, else 429 or 503. */
export function withQuota(decision: Decision, quota: Quota): Decision {
  const match = decision.rateLimit!;
  const rateLimit = { ...match, quota };
  if (quota.allowed) return { ...decision, rateLimit };
  const unavailable = quota.fallback === 'closed';
  return {
    ...decision,
    allow: false,
    reason: unavailable ? 'rate_limit_unavailable' : 'rate_limited',
    detail: unavailable ? `the shared counter for ${match.limit.id} did not answer` : `over ${match.limit.id}`,
    rateLimit,
  };
}

type Match = ReturnType<typeof firstMatch>;

function reasonOf(deny: Match, allowPolicies: number, allow: Match): DecisionReason {
  if (deny) return 'deny_policy_matched';
  if (allowPolicies === 0) return 'no_allow_policies';
  return allow ? 'allow_policy_matched' : 'no_allow_policy_matched';
}

/** The outcome if dry-run and enforced policies were enforced together. */
function dryRunOutcome(set: CompiledPolicySet, f: RequestFacts, actual: boolean, deny: Match, allow: Match, audit: Match): DryRunOutcome {
  const dry = set.dryRun!;
  const combinedDeny = earlier(deny, firstMatch(dry.deny, f));
  const allowPolicies = set.allow.policies + dry.allow.policies;
  // No enforced DENY matched when combinedDeny is empty, so the enforced ALLOW match was computed.
  const combinedAllow = !combinedDeny && allowPolicies > 0 ? earlier(allow, firstMatch(dry.allow, f)) : undefined;
  const allowed = !combinedDeny && (combinedAllow !== undefined || allowPolicies === 0);
  return {
    allow: allowed,
    reason: reasonOf(combinedDeny, allowPolicies, combinedAllow),
    rule: (combinedDeny ?? combinedAllow)?.ref,
    audit: earlier(audit, firstMatch(dry.audit, f))?.ref,
    changed: allowed !== actual,
  };
}

function earlier(a: Match, b: Match): Match {
  if (!a) return b;
  if (!b) return a;
  return a.ordinal <= b.ordinal ? a : b;
}

/** A deny decided outside the policies (malformed request, no policy set, internal error). */
export function denyDecision(reason: DecisionReason, revision: string, detail?: string): Decision {
  return { allow: false, reason, revision, rule: undefined, audit: undefined, dryRun: undefined, detail, nearest: undefined };
}


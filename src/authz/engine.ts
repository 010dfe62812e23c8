/**
 * The decision, exactly in Istio's order: (CUSTOM is refused at load) DENY, then ALLOW; no ALLOW
 * policy means allow, ALLOW policies and no match means deny; AUDIT never changes the outcome;
 * dry-run policies are evaluated and reported, never enforced. `evaluate` is pure and returns what
 * decided along with the outcome.
 */
import { type CompiledPolicySet, firstMatch, type RuleRef } from './compile.js';
import { type AuthzInput, RequestFacts } from './facts.js';

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
  /** The peer certificate's identity differs from the principal Envoy reported. */
  | 'peer_principal_mismatch'
  /** Set by the ext_authz handler: the CheckRequest lacks what a decision needs. */
  | 'malformed_request'
  /** Set by the ext_authz handler: no valid policy set has been loaded yet. */
  | 'no_valid_policy_set'
  /** Set by the ext_authz handler: an unexpected failure, answered with a deny. */
  | 'internal_error';

export interface Decision {
  readonly allow: boolean;
  readonly reason: DecisionReason;
  /** The policy set revision the decision was made under ('' when none was loaded). */
  readonly revision: string;
  /** The DENY or ALLOW rule that decided; absent for default outcomes. */
  readonly rule?: RuleRef;
  /** The first AUDIT rule that matched; the outcome is the same either way. */
  readonly audit?: RuleRef;
  /** Present when dry-run policies exist: what the outcome would be if they were enforced. */
  readonly dryRun?: DryRunOutcome;
  /** Extra words for the operator (certificate failures, malformed requests). */
  readonly detail?: string;
}

export interface DryRunOutcome {
  readonly allow: boolean;
  readonly reason: DecisionReason;
  readonly rule?: RuleRef;
  readonly audit?: RuleRef;
  /** Whether enforcing the dry-run policies would change allow/deny. */
  readonly changed: boolean;
}

export function evaluate(set: CompiledPolicySet, input: AuthzInput): Decision {
  const revision = set.revision;
  let principal = input.principal || undefined;
  const cert = input.peerCertificate;
  if (cert) {
    if (cert.status === 'invalid') return { allow: false, reason: 'peer_certificate_invalid', revision, detail: cert.reason };
    const certId = cert.status === 'verified' ? cert.spiffeId : cert.uriSan;
    if (certId !== undefined) {
      if (principal !== undefined && principal !== certId) {
        return {
          allow: false,
          reason: 'peer_principal_mismatch',
          revision,
          detail: `the peer certificate is for ${certId} but Envoy reported principal ${principal}`,
        };
      }
      if (cert.status === 'verified') principal = certId;
    }
  }
  const f = new RequestFacts(input, principal, set.needs);

  const deny = firstMatch(set.deny, f);
  const allowMatch = deny || set.allow.policies === 0 ? undefined : firstMatch(set.allow, f);
  const audit = firstMatch(set.audit, f);
  const decision = outcome(deny, set.allow, allowMatch, revision);
  if (audit) decision.audit = audit.ref;
  if (set.dryRun) decision.dryRun = dryRunOutcome(set, f, decision, deny, allowMatch, audit);
  return decision;
}

type Match = ReturnType<typeof firstMatch>;
type MutableDecision = { -readonly [K in keyof Decision]: Decision[K] };

function outcome(deny: Match, allowGroup: { readonly policies: number }, allow: Match, revision: string): MutableDecision {
  if (deny) return { allow: false, reason: 'deny_policy_matched', revision, rule: deny.ref };
  if (allowGroup.policies === 0) return { allow: true, reason: 'no_allow_policies', revision };
  if (allow) return { allow: true, reason: 'allow_policy_matched', revision, rule: allow.ref };
  return { allow: false, reason: 'no_allow_policy_matched', revision };
}

/** The outcome if dry-run and enforced policies were enforced together. */
function dryRunOutcome(set: CompiledPolicySet, f: RequestFacts, actual: Decision, deny: Match, allow: Match, audit: Match): DryRunOutcome {
  const dry = set.dryRun!;
  const combinedDeny = earlier(deny, firstMatch(dry.deny, f));
  const allowPolicies = { policies: set.allow.policies + dry.allow.policies };
  let combinedAllow: Match;
  if (!combinedDeny && allowPolicies.policies > 0) {
    // No enforced DENY matched here, so the enforced ALLOW match was computed.
    combinedAllow = earlier(allow, firstMatch(dry.allow, f));
  }
  const o = outcome(combinedDeny, allowPolicies, combinedAllow, actual.revision);
  const combinedAudit = earlier(audit, firstMatch(dry.audit, f));
  return {
    allow: o.allow,
    reason: o.reason,
    ...(o.rule ? { rule: o.rule } : {}),
    ...(combinedAudit ? { audit: combinedAudit.ref } : {}),
    changed: o.allow !== actual.allow,
  };
}

function earlier(a: Match, b: Match): Match {
  if (!a) return b;
  if (!b) return a;
  return a.ordinal <= b.ordinal ? a : b;
}

/** A deny decided outside the policies (malformed request, no policy set, internal error). */
export function denyDecision(reason: DecisionReason, revision: string, detail?: string): Decision {
  return { allow: false, reason, revision, ...(detail !== undefined ? { detail } : {}) };
}


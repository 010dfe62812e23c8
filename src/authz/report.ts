/** How policies and decisions are shown to operators: lint listings, check output, logs. Pure. */
import type { RuleRef } from './compile.js';
import type { Decision } from './engine.js';
import { nearMissText } from './explain.js';
import type { AuthorizationPolicy } from './policy.js';
import type { CompiledRateLimit } from './rate-limit/compile.js';

export interface PolicySummary {
  readonly id: string;
  readonly name: string;
  readonly namespace: string | null;
  readonly action: string;
  readonly dryRun: boolean;
  readonly rules: number;
  readonly file: string;
  readonly doc: number;
  readonly line: number | null;
  /** Read and reported only: every policy in the directory applies to this workload. */
  readonly selector: Readonly<Record<string, string>> | null;
  readonly targetRefs: ReadonlyArray<{ readonly group?: string; readonly kind: string; readonly name: string; readonly namespace?: string }>;
}

export function summarizePolicy(p: AuthorizationPolicy): PolicySummary {
  return {
    id: p.id,
    name: p.name,
    namespace: p.namespace ?? null,
    action: p.action,
    dryRun: p.dryRun,
    rules: p.rules.length,
    file: p.origin.file,
    doc: p.origin.doc,
    line: p.origin.line ?? null,
    selector: p.selector ?? null,
    targetRefs: p.targetRefs,
  };
}

/** One line per policy for `meshid policy lint`. */
export function policyLine(p: AuthorizationPolicy): string {
  const notes: string[] = [`${p.rules.length} rule${p.rules.length === 1 ? '' : 's'}`, `${p.origin.file} doc ${p.origin.doc}`];
  if (p.dryRun) notes.push('dry-run');
  if (p.selector) notes.push(`selector ${Object.entries(p.selector).map(([k, v]) => `${k}=${v}`).join(',')} (not applied: every policy applies to this workload)`);
  if (p.targetRefs.length > 0) notes.push(`targetRefs ${p.targetRefs.map((r) => `${r.kind}/${r.name}`).join(',')} (not applied)`);
  return `${p.id.padEnd(32)} ${p.action.padEnd(5)} ${notes.join('; ')}`;
}

export interface RuleRefView {
  readonly policy: string;
  readonly namespace: string | null;
  readonly name: string;
  readonly rule: number;
  readonly action: string;
  readonly file: string;
  readonly doc: number;
  readonly dryRun: boolean;
  /** Reported only: every policy in the directory applies to this workload. */
  readonly selector: Readonly<Record<string, string>> | null;
  readonly targetRefs: PolicySummary['targetRefs'];
}

export function ruleRefView(r: RuleRef): RuleRefView {
  return {
    policy: r.policy.id,
    namespace: r.policy.namespace ?? null,
    name: r.policy.name,
    rule: r.rule,
    action: r.action,
    file: r.policy.origin.file,
    doc: r.policy.origin.doc,
    dryRun: r.dryRun,
    selector: r.policy.selector ?? null,
    targetRefs: r.policy.targetRefs,
  };
}

/** The JSON object `meshid authz check` prints. */
export function decisionView(d: Decision): Record<string, unknown> {
  return {
    decision: d.allow ? 'allow' : 'deny',
    reason: d.reason,
    policy: d.rule?.policy.id ?? null,
    rule: d.rule?.rule ?? null,
    action: d.rule?.action ?? null,
    matched: d.rule ? ruleRefView(d.rule) : null,
    audit: d.audit !== undefined,
    auditPolicy: d.audit ? ruleRefView(d.audit) : null,
    dryRun: d.dryRun
      ? {
          decision: d.dryRun.allow ? 'allow' : 'deny',
          reason: d.dryRun.reason,
          changed: d.dryRun.changed,
          policy: d.dryRun.rule?.policy.id ?? null,
          rule: d.dryRun.rule?.rule ?? null,
          matched: d.dryRun.rule ? ruleRefView(d.dryRun.rule) : null,
          auditPolicy: d.dryRun.audit ? ruleRefView(d.dryRun.audit) : null,
        }
      : null,
    revision: d.revision,
    // `authz check` keeps no counters: it says which limit the request would count against.
    rateLimit: d.rateLimit
      ? {
          limit: d.rateLimit.limit.id,
          requests: d.rateLimit.limit.limit.requests,
          per: d.rateLimit.limit.limit.unit,
          burst: d.rateLimit.limit.limit.burst,
          partition: d.rateLimit.limit.limit.partition,
          counter: d.rateLimit.key,
          file: d.rateLimit.limit.policy.origin.file,
        }
      : null,
    ...(d.detail !== undefined ? { detail: d.detail } : {}),
    // A default deny: the nearest ALLOW rules and the first condition each failed.
    ...(d.nearest ? { nearest: d.nearest.map((m) => ({ ...ruleRefView(m.rule), met: m.met, conditions: m.conditions, failed: m.failed, text: nearMissText(m) })) } : {}),
  };
}

/** One line per rate limit for `meshid policy lint`. */
export function rateLimitLine(l: CompiledRateLimit): string {
  const { requests, unit, burst, partition } = l.limit;
  return `${l.id.padEnd(32)} LIMIT ${requests}/${unit}, burst ${burst}, per ${partition}; ${l.policy.origin.file} doc ${l.policy.origin.doc}`;
}

/** Builds compiled policy sets from compact JS descriptions, through the real YAML validation. */
import { compilePolicySet, type CompiledPolicySet } from '../../../src/authz/compile.js';
import { buildPolicySet } from '../../../src/authz/policy-set.js';
import { formatIssue } from '../../../src/authz/validate.js';

export interface PolicyDesc {
  readonly name: string;
  readonly namespace?: string;
  readonly action?: 'ALLOW' | 'DENY' | 'AUDIT';
  readonly dryRun?: boolean;
  /** Absent: `spec: {}` without rules. */
  readonly rules?: readonly unknown[];
}

export function policyDoc(p: PolicyDesc): string {
  return JSON.stringify({
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: {
      name: p.name,
      namespace: p.namespace ?? 'shop',
      ...(p.dryRun ? { annotations: { 'istio.io/dry-run': 'true' } } : {}),
    },
    spec: { ...(p.action ? { action: p.action } : {}), ...(p.rules ? { rules: p.rules } : {}) },
  });
}

export function policyYaml(policies: readonly PolicyDesc[]): string {
  return policies.map(policyDoc).join('\n---\n');
}

/** Compiles policies (validated exactly as loaded from disk); throws on validation errors. */
export function compileDescs(policies: readonly PolicyDesc[], options: { index?: boolean } = {}): CompiledPolicySet {
  const r = buildPolicySet([{ file: 'test.yaml', text: policyYaml(policies) }]);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return options.index === false ? compilePolicySet(r.set.policies, r.set.revision, { index: false }) : r.set;
}

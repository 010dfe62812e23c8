/**
 * From policy file texts to a compiled policy set, all or nothing: any error anywhere and the set
 * is refused, with every error listed. The revision is a hash of the files' names and contents,
 * so the same directory gives the same revision on every agent and across restarts.
 */
import { createHash } from 'node:crypto';
import { type CompileOptions, compilePolicySet, type CompiledPolicySet } from './compile.js';
import { lintPolicies } from './lint.js';
import type { AuthorizationPolicy } from './policy.js';
import type { RateLimitPolicy } from './rate-limit/policy.js';
import { type ParsedPolicies, parsePolicyFiles, type PolicyFileText, type PolicyIssue } from './validate.js';

export type PolicySetResult =
  | { readonly ok: true; readonly set: CompiledPolicySet; readonly warnings: readonly PolicyIssue[] }
  | { readonly ok: false; readonly errors: readonly PolicyIssue[]; readonly revision: string };

export function buildPolicySet(
  files: readonly PolicyFileText[],
  label = 'policy directory',
  revision = revisionOf(files),
  options: CompileOptions = {},
): PolicySetResult {
  const checked = checkParsed(parsePolicyFiles(files), label);
  if (!checked.ok) return { ok: false, errors: checked.errors, revision };
  return { ok: true, set: compilePolicySet(checked.policies, revision, options, checked.rateLimits), warnings: checked.warnings };
}

/** Parsed policies, before compiling: all of them with their warnings, or every error. */
export type CheckedPolicies =
  | { readonly ok: true; readonly policies: readonly AuthorizationPolicy[]; readonly rateLimits: readonly RateLimitPolicy[]; readonly warnings: readonly PolicyIssue[] }
  | { readonly ok: false; readonly errors: readonly PolicyIssue[] };

/** The refusal (any error) or the policies with parse and lint warnings: what compiling needs. */
export function checkParsed(parsed: ParsedPolicies, label: string): CheckedPolicies {
  const { policies, rateLimits, errors, warnings: parseWarnings } = parsed;
  if (errors.length > 0) return { ok: false, errors };
  const warnings = [...parseWarnings, ...lintPolicies(policies)];
  if (policies.length === 0) {
    warnings.unshift({ severity: 'warning', code: 'no_policies', file: label, message: 'no AuthorizationPolicy documents: every request is allowed' });
  }
  return { ok: true, policies, rateLimits, warnings };
}

export function revisionOf(files: readonly PolicyFileText[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
    h.update(`${f.file}\0${Buffer.byteLength(f.text)}\0`).update(f.text);
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * From policy file texts to a compiled policy set, all or nothing: any error anywhere and the set
 * is refused, with every error listed. The revision is a hash of the files' names and contents,
 * so the same directory gives the same revision on every agent and across restarts.
 */
import { createHash } from 'node:crypto';
import { type CompileOptions, compilePolicySet, type CompiledPolicySet } from './compile.js';
import { lintPolicies } from './lint.js';
import { parsePolicyFiles, type PolicyFileText, type PolicyIssue } from './validate.js';

export type PolicySetResult =
  | { readonly ok: true; readonly set: CompiledPolicySet; readonly warnings: readonly PolicyIssue[] }
  | { readonly ok: false; readonly errors: readonly PolicyIssue[]; readonly revision: string };

export function buildPolicySet(
  files: readonly PolicyFileText[],
  label = 'policy directory',
  revision = revisionOf(files),
  options: CompileOptions = {},
): PolicySetResult {
  const { policies, rateLimits, errors, warnings: parseWarnings } = parsePolicyFiles(files);
  if (errors.length > 0) return { ok: false, errors, revision };
  const warnings = [...parseWarnings, ...lintPolicies(policies)];
  if (policies.length === 0) {
    warnings.unshift({ severity: 'warning', code: 'no_policies', file: label, message: 'no AuthorizationPolicy documents: every request is allowed' });
  }
  return { ok: true, set: compilePolicySet(policies, revision, options, rateLimits), warnings };
}

export function revisionOf(files: readonly PolicyFileText[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
    h.update(`${f.file}\0${Buffer.byteLength(f.text)}\0`).update(f.text);
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * Warnings: policies that are valid Istio but probably do not mean what they say. They never stop
 * a policy set from loading. Pure.
 */
import { parseConditionKey, type ConditionKey } from './attributes.js';
import { parseCidr } from './cidr.js';
import { parsePattern } from './patterns.js';
import type { AuthorizationPolicy, Rule, Source } from './policy.js';
import { pathText, type PolicyIssue } from './validate.js';

export function lintPolicies(policies: readonly AuthorizationPolicy[]): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  const deniesPlaintext = policies.some((p) => p.action === 'DENY' && !p.dryRun && p.rules.some(deniesEveryPlaintextRequest));
  for (const p of policies) {
    const warn = (path: ReadonlyArray<string | number>, code: string, message: string) =>
      out.push({
        severity: 'warning',
        code,
        file: p.origin.file,
        doc: p.origin.doc,
        policy: p.name,
        ...(p.origin.line !== undefined ? { line: p.origin.line } : {}),
        path: pathText(['spec', ...path]),
        message,
      });
    if (p.rules.length === 0 && p.action !== 'ALLOW') {
      warn(['rules'], 'never_matches', `a ${p.action} policy without rules never matches`);
    }
    p.rules.forEach((rule, r) => {
      rule.from?.forEach((s, i) => {
        const at = ['rules', r, 'from', i, 'source'];
        plaintextTrap(p, s, deniesPlaintext, (field, msg) => warn([...at, field], 'plaintext_match', msg));
        for (const field of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
          s[field]?.forEach((v, j) => hostBits(v, (msg) => warn([...at, field, j], 'cidr_host_bits', msg)));
        }
      });
      rule.to?.forEach((o, i) => {
        const at = ['rules', r, 'to', i, 'operation'];
        for (const field of ['methods', 'notMethods'] as const) {
          o[field]?.forEach((v, j) => {
            if (v !== v.toUpperCase()) warn([...at, field, j], 'method_case', `methods compare case-sensitively and Envoy reports them upper case: ${JSON.stringify(v)} never matches ${JSON.stringify(v.toUpperCase())}`);
          });
        }
        for (const field of ['paths', 'notPaths'] as const) {
          o[field]?.forEach((v, j) => {
            const pat = parsePattern(v);
            if (!('error' in pat) && (pat.kind === 'exact' || pat.kind === 'prefix') && !pat.value.startsWith('/')) {
              warn([...at, field, j], 'path_not_absolute', `${JSON.stringify(v)} does not start with "/", so it never matches a request path`);
            }
          });
        }
      });
      whenTraps(p, rule, deniesPlaintext, (i, field, msg) => warn(['rules', r, 'when', i, field], 'plaintext_match', msg));
      rule.when?.forEach((c, i) => {
        const key = parseConditionKey(c.key) as ConditionKey;
        if (key.kind === 'ip' || key.kind === 'remoteIp' || key.kind === 'destinationIp') {
          for (const field of ['values', 'notValues'] as const) {
            c[field]?.forEach((v, j) => hostBits(v, (msg) => warn(['rules', r, 'when', i, field, j], 'cidr_host_bits', msg)));
          }
        }
      });
    });
  }
  return out;
}

const TRAP_REF = 'ISTIO-SECURITY-2021-004';

/** Plaintext requests have no principal: negative principal/namespace fields match them. */
function plaintextTrap(p: AuthorizationPolicy, s: Source, deniesPlaintext: boolean, warn: (field: string, msg: string) => void): void {
  if (p.action === 'ALLOW' || p.action === 'AUDIT') {
    if (s.principals || s.namespaces) return; // the positive field already requires mTLS
    for (const field of ['notPrincipals', 'notNamespaces'] as const) {
      if (s[field]) {
        warn(field, `also matches plaintext requests, which have no principal (${TRAP_REF}); add principals: ["*"] to this source to require mTLS`);
      }
    }
  } else if (p.action === 'DENY' && !deniesPlaintext) {
    for (const field of ['principals', 'namespaces'] as const) {
      if (s[field]) {
        warn(field, `does not match plaintext requests, which have no principal, so they are not denied (${TRAP_REF}); deny them with notPrincipals: ["*"] in a DENY rule`);
      }
    }
  }
}

function whenTraps(p: AuthorizationPolicy, rule: Rule, deniesPlaintext: boolean, warn: (i: number, field: string, msg: string) => void): void {
  rule.when?.forEach((c, i) => {
    const kind = (parseConditionKey(c.key) as ConditionKey).kind;
    if (kind !== 'principal' && kind !== 'namespace') return;
    if ((p.action === 'ALLOW' || p.action === 'AUDIT') && c.notValues && !c.values) {
      warn(i, 'notValues', `${c.key} notValues also match plaintext requests, which have no principal (${TRAP_REF})`);
    } else if (p.action === 'DENY' && c.values && !deniesPlaintext) {
      warn(i, 'values', `${c.key} values do not match plaintext requests, so they are not denied (${TRAP_REF})`);
    }
  });
}

/** `from: [{source: {notPrincipals: ["*"]}}]` and nothing else: the usual "deny plaintext" rule. */
function deniesEveryPlaintextRequest(rule: Rule): boolean {
  if (rule.to || rule.when || !rule.from) return false;
  return rule.from.some((s) => Object.keys(s).length === 1 && s.notPrincipals?.includes('*'));
}

function hostBits(v: string, warn: (msg: string) => void): void {
  const b = parseCidr(v);
  if (!('error' in b) && b.hostBitsSet) warn(`${JSON.stringify(v)} has bits set beyond its prefix length; it means the whole block`);
}

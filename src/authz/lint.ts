/**
 * Warnings: policies that are valid Istio but probably do not mean what they say. They never stop
 * a policy set from loading. Pure.
 */
import { quoteBounded } from '../lib/quote.js';
import { type ConditionKey, OPERATION_KINDS, parseConditionKey, SOURCE_KINDS, type ValueKind } from './attributes.js';
import { parseCidr } from '../lib/ip.js';
import { containsPathTemplate } from './paths.js';
import { hasLiteralStar, parsePattern } from './patterns.js';
import { type AuthorizationPolicy, OPERATION_FIELDS, type Operation, type Rule, SOURCE_FIELDS, type Source } from './policy.js';
import { pathText, type PolicyIssue, type PolicyIssueCode } from './validate.js';

export function lintPolicies(policies: readonly AuthorizationPolicy[]): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  const deniesPlaintext = policies.some((p) => p.action === 'DENY' && !p.dryRun && p.rules.some(deniesEveryPlaintextRequest));
  for (const p of policies) {
    const warn = (path: ReadonlyArray<string | number>, code: PolicyIssueCode, message: string) =>
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
            if (v !== v.toUpperCase()) warn([...at, field, j], 'method_case', `methods compare case-sensitively and Envoy reports them upper case: ${quoteBounded(v)} never matches ${quoteBounded(v.toUpperCase())}`);
          });
        }
        for (const field of ['paths', 'notPaths'] as const) {
          o[field]?.forEach((v, j) => {
            const pat = parsePattern(v);
            if ((pat.kind === 'exact' || pat.kind === 'prefix') && !pat.value.startsWith('/')) {
              warn([...at, field, j], 'path_not_absolute', `${quoteBounded(v)} does not start with "/", so it never matches a request path`);
            }
          });
        }
      });
      whenTraps(p, rule, deniesPlaintext, (i, field, msg) => warn(['rules', r, 'when', i, field], 'plaintext_match', msg));
      valueTraps(rule, (path, code, msg) => warn(['rules', r, ...path], code, msg));
      rule.to?.forEach((o, i) => hostPortTrap(p, o, (field, msg) => warn(['rules', r, 'to', i, 'operation', field], 'host_port', msg)));
      rule.when?.forEach((c, i) => {
        if ((parseConditionKey(c.key) as ConditionKey).kind !== 'sni') return;
        const risky = p.action === 'DENY' ? c.values : c.notValues;
        if (risky && risky.length > 0) {
          warn(['rules', r, 'when', i, 'key'], 'sni_case', 'connection.sni compares case-sensitively (as Istio generates it): a client that sends the name in other letter case is not matched; prefer hosts, or list the spellings');
        }
      });
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

type ValueWarn = (path: ReadonlyArray<string | number>, code: PolicyIssueCode, message: string) => void;

/** Per-value findings on every field and `when` of a rule: values Istio accepts that rarely mean what they say. */
function valueTraps(rule: Rule, warn: ValueWarn): void {
  const check = (kind: ValueKind, values: readonly string[] | undefined, at: ReadonlyArray<string | number>) => {
    if (!values) return;
    if (values.length === 0) {
      warn(at, 'empty_list', 'an empty list: Istio reads it as "not set", which matches anything; remove the field or add values');
      return;
    }
    values.forEach((v, j) => {
      if (kind === 'principal' && /^\*?spiffe:\/\//i.test(v)) {
        warn([...at, j], 'principal_spiffe_prefix', `${quoteBounded(v)}: Istio prepends "spiffe://", so this never matches; write ${quoteBounded(v.replace(/^(\*?)spiffe:\/\//i, '$1'))}`);
      }
      const literal = kind !== 'serviceAccount' && kind !== 'trustDomain' && !(kind === 'path' && containsPathTemplate(v)) && hasLiteralStar(v);
      if (literal && kind !== 'namespace') {
        warn([...at, j], 'literal_wildcard', `${quoteBounded(v)}: Istio reads "*" only alone, first or last; this one is compared literally`);
      }
    });
  };
  rule.from?.forEach((s, i) => {
    for (const f of SOURCE_FIELDS) check(SOURCE_KINDS[f], s[f], ['from', i, 'source', f]);
  });
  rule.to?.forEach((o, i) => {
    for (const f of OPERATION_FIELDS) check(OPERATION_KINDS[f], o[f], ['to', i, 'operation', f]);
  });
  rule.when?.forEach((c, i) => {
    const kind = (parseConditionKey(c.key) as ConditionKey).kind;
    check(kind, c.values, ['when', i, 'values']);
    check(kind, c.notValues, ['when', i, 'notValues']);
  });
}

/**
 * Istio compares hosts with the whole :authority, so "admin.example.com" does not match
 * "admin.example.com:8080": a DENY (or an ALLOW's notHosts) on a host without a port is bypassed by
 * adding one. Istio's security best practices say to list both "host" and "host:*".
 */
function hostPortTrap(p: AuthorizationPolicy, o: Operation, warn: (field: string, msg: string) => void): void {
  const field = p.action === 'DENY' ? 'hosts' : p.action === 'ALLOW' ? 'notHosts' : undefined;
  const values = field ? o[field as 'hosts' | 'notHosts'] : undefined;
  if (!field || !values) return;
  const lower = new Set(values.map((v) => v.toLowerCase()));
  const missing = values.filter((v) => v !== '*' && !v.endsWith('*') && !v.includes(':') && !lower.has(`${v.toLowerCase()}:*`));
  if (missing.length > 0) {
    const what = p.action === 'DENY' ? 'not denied' : 'allowed';
    warn(field, `a request for ${missing.map((m) => quoteBounded(`${m}:<port>`)).join(', ')} is ${what}: Istio compares hosts with the whole authority, port included; list ${missing.map((m) => `${quoteBounded(m)} and ${quoteBounded(`${m}:*`)}`).join(', ')}`);
  }
}

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
  if (!('error' in b) && b.hostBitsSet) warn(`${quoteBounded(v)} has bits set beyond its prefix length; it means the whole block`);
}

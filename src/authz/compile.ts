/**
 * Compiles validated policies into matchers and indexes. Each rule becomes one predicate over
 * RequestFacts; rules are grouped by action (and dry-run), and within a group every rule whose
 * match requires one of a few exact values (principal, path, host, namespace) is filed under those
 * values in a Map. A decision then looks at the rules filed under the request's own values plus
 * the short list of rules that could not be indexed, so 10,000 rules over distinct principals cost
 * about what 10 do. Every rule keeps its global ordinal, so "the first matching rule" is the same
 * as a linear scan would find. Pure.
 */
import { type ConditionKey, OPERATION_KINDS, parseConditionKey, SOURCE_KINDS, type ValueKind } from './attributes.js';
import { type CidrBlock, cidrContains, type IpAddress, parseCidr } from './cidr.js';
import { type FactNeeds, hostValueHasPort, type RequestFacts, stripPort, withoutTrailingDot } from './facts.js';
import { compilePatterns, matchPatterns, parsePattern, type StringPattern } from './patterns.js';
import { type AuthorizationPolicy, OPERATION_FIELDS, type Operation, type PolicyAction, type Rule, SOURCE_FIELDS, type Source } from './policy.js';
import { type CompiledRateLimit, compileRateLimits } from './rate-limit/compile.js';
import type { RateLimitPolicy } from './rate-limit/policy.js';

/** The rule that decided, as reported in decisions, logs and Envoy metadata. */
export interface RuleRef {
  readonly policy: AuthorizationPolicy;
  /** Index of the rule in spec.rules. */
  readonly rule: number;
  readonly action: PolicyAction;
  readonly dryRun: boolean;
}

export interface CompiledRule {
  /** Global order: policies in load order (file path, then document), rules in order. */
  readonly ordinal: number;
  readonly ref: RuleRef;
  readonly match: (f: RequestFacts) => boolean;
}

type Predicate = (f: RequestFacts) => boolean;

export interface RuleGroup {
  /** Policies in the group, rules or not (an ALLOW policy without rules still turns on default deny). */
  readonly policies: number;
  readonly rules: number;
  /** Rules with no exact guard, checked for every request. */
  readonly scan: readonly CompiledRule[];
  readonly byPrincipal: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly byNamespace: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly byPath: ReadonlyMap<string, readonly CompiledRule[]>;
  /** Host values without a port, keyed on the authority without its port. */
  readonly byHost: ReadonlyMap<string, readonly CompiledRule[]>;
  /** Host values with a port, keyed on the full authority. */
  readonly byHostPort: ReadonlyMap<string, readonly CompiledRule[]>;
}

export interface CompiledPolicySet {
  /** Content hash of the policy files this set was built from. */
  readonly revision: string;
  readonly policies: readonly AuthorizationPolicy[];
  readonly needs: FactNeeds;
  readonly deny: RuleGroup;
  readonly allow: RuleGroup;
  readonly audit: RuleGroup;
  /** Dry-run policies, evaluated only to report what they would have decided. */
  readonly dryRun: { readonly deny: RuleGroup; readonly allow: RuleGroup; readonly audit: RuleGroup } | undefined;
  /** RateLimitPolicy limits in load order, checked for allowed requests. */
  readonly rateLimits: readonly CompiledRateLimit[];
}

const SPIFFE = 'spiffe://';

export interface CompileOptions {
  /** false: every rule is scanned (tests compare indexed and linear evaluation). */
  readonly index?: boolean;
}

export function compilePolicySet(
  policies: readonly AuthorizationPolicy[],
  revision: string,
  options: CompileOptions = {},
  rateLimits: readonly RateLimitPolicy[] = [],
): CompiledPolicySet {
  const needs = { namespaces: false, sourceIp: false, destinationIp: false };
  const matchers = new MatcherCache(needs);
  const builders = {
    enforced: { DENY: new GroupBuilder(), ALLOW: new GroupBuilder(), AUDIT: new GroupBuilder() },
    dryRun: { DENY: new GroupBuilder(), ALLOW: new GroupBuilder(), AUDIT: new GroupBuilder() },
  };
  let ordinal = 0;
  for (const policy of policies) {
    const builder = builders[policy.dryRun ? 'dryRun' : 'enforced'][policy.action];
    builder.policies++;
    policy.rules.forEach((rule, index) => {
      const compiled: CompiledRule = {
        ordinal: ordinal++,
        ref: Object.freeze({ policy, rule: index, action: policy.action, dryRun: policy.dryRun }),
        match: compileRule(rule, matchers),
      };
      builder.add(compiled, options.index === false ? undefined : guardOf(rule));
    });
  }
  const anyDryRun = policies.some((p) => p.dryRun);
  const limits = compileRateLimits(rateLimits, (rule) => compileRule(rule, matchers), needs);
  return Object.freeze({
    revision,
    policies,
    needs: Object.freeze(needs),
    deny: builders.enforced.DENY.build(),
    allow: builders.enforced.ALLOW.build(),
    audit: builders.enforced.AUDIT.build(),
    dryRun: anyDryRun
      ? Object.freeze({ deny: builders.dryRun.DENY.build(), allow: builders.dryRun.ALLOW.build(), audit: builders.dryRun.AUDIT.build() })
      : undefined,
    rateLimits: limits,
  });
}

/** The first (lowest ordinal) rule of the group that matches, or undefined. */
export function firstMatch(group: RuleGroup, f: RequestFacts): CompiledRule | undefined {
  if (group.rules === 0) return undefined;
  let best = scanList(group.scan, f, undefined);
  if (f.principal !== undefined) best = scanList(group.byPrincipal.get(f.principal), f, best);
  if (f.path !== undefined) best = scanList(group.byPath.get(f.path), f, best);
  if (f.hostNoPort !== undefined) {
    best = scanList(group.byHost.get(f.hostNoPort), f, best);
    best = scanList(group.byHostPort.get(f.host!), f, best);
  }
  for (const ns of f.namespaces) best = scanList(group.byNamespace.get(ns), f, best);
  return best;
}

function scanList(list: readonly CompiledRule[] | undefined, f: RequestFacts, best: CompiledRule | undefined): CompiledRule | undefined {
  if (list === undefined) return best;
  const limit = best === undefined ? Infinity : best.ordinal;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (r.ordinal >= limit) break; // lists are in ordinal order
    if (r.match(f)) return r;
  }
  return best;
}

// ---- indexing --------------------------------------------------------------------------------

type IndexName = 'byPrincipal' | 'byNamespace' | 'byPath' | 'byHost' | 'byHostPort';
/** Exact values at least one of which the request must carry for the rule to match. */
type Guard = ReadonlyArray<readonly [IndexName, string]>;

class GroupBuilder {
  policies = 0;
  private rules = 0;
  private readonly scan: CompiledRule[] = [];
  private readonly maps: Record<IndexName, Map<string, CompiledRule[]>> = {
    byPrincipal: new Map(),
    byNamespace: new Map(),
    byPath: new Map(),
    byHost: new Map(),
    byHostPort: new Map(),
  };

  add(rule: CompiledRule, guard: Guard | undefined): void {
    this.rules++;
    if (!guard) {
      this.scan.push(rule);
      return;
    }
    for (const [index, key] of guard) {
      const map = this.maps[index];
      const list = map.get(key);
      if (!list) map.set(key, [rule]);
      else if (list[list.length - 1] !== rule) list.push(rule); // a rule may list a value twice
    }
  }

  build(): RuleGroup {
    return Object.freeze({
      policies: this.policies,
      rules: this.rules,
      scan: this.scan,
      ...this.maps,
    });
  }
}

/**
 * A guard from the first field, in order of usual selectivity, that every alternative of the rule
 * constrains to exact values. A rule with none (`{}`, wildcards, negations only) is scanned.
 */
function guardOf(rule: Rule): Guard | undefined {
  const exactAll = (values: readonly string[] | undefined): string[] | undefined => {
    if (!values) return undefined;
    const out: string[] = [];
    for (const v of values) {
      const p = parsePattern(v);
      if ('error' in p || p.kind !== 'exact') return undefined;
      out.push(p.value);
    }
    return out;
  };
  /** Exact values of field in every alternative, or from a `when` on the same attribute. */
  const collect = <T>(alternatives: readonly T[] | undefined, field: (t: T) => readonly string[] | undefined, whenKind: ValueKind | undefined): string[] | undefined => {
    if (alternatives && alternatives.length > 0) {
      const out: string[] = [];
      let ok = true;
      for (const alt of alternatives) {
        const vals = exactAll(field(alt));
        if (!vals) {
          ok = false;
          break;
        }
        out.push(...vals);
      }
      if (ok) return out;
    }
    if (whenKind) {
      for (const c of rule.when ?? []) {
        const key = parseConditionKey(c.key) as ConditionKey;
        if (key.kind === whenKind) {
          const vals = exactAll(c.values);
          if (vals) return vals;
        }
      }
    }
    return undefined;
  };
  const principals = collect(rule.from, (s: Source) => s.principals, 'principal');
  if (principals) return principals.map((v) => ['byPrincipal', SPIFFE + v] as const);
  const paths = collect(rule.to, (o: Operation) => o.paths, undefined);
  if (paths) return paths.map((v) => ['byPath', v] as const);
  const hosts = collect(rule.to, (o: Operation) => o.hosts, undefined);
  if (hosts) {
    return hosts.map((v) => {
      const lower = v.toLowerCase();
      return hostValueHasPort(lower) ? (['byHostPort', withoutTrailingDot(lower)] as const) : (['byHost', stripPort(lower)] as const);
    });
  }
  const namespaces = collect(rule.from, (s: Source) => s.namespaces, 'namespace');
  if (namespaces) return namespaces.map((v) => ['byNamespace', v] as const);
  return undefined;
}

// ---- matchers --------------------------------------------------------------------------------

type MutableNeeds = { namespaces: boolean; sourceIp: boolean; destinationIp: boolean };

/**
 * Builds value matchers once per distinct (attribute, values): rules that repeat the same
 * methods or hosts share one matcher, which keeps large policy sets small and cache-friendly.
 */
class MatcherCache {
  private readonly cache = new Map<string, Predicate>();

  constructor(private readonly needs: MutableNeeds) {}

  get(kind: ValueKind, values: readonly string[], negated: boolean, header?: string): Predicate {
    const key = `${negated ? '!' : ''}${kind}\0${header ?? ''}\0${values.join('\0')}`;
    let m = this.cache.get(key);
    if (!m) {
      const positive = valueMatcher(kind, values, this.needs, header);
      m = negated ? negate(positive) : positive;
      this.cache.set(key, m);
    }
    return m;
  }
}

function compileRule(rule: Rule, matchers: MatcherCache): Predicate {
  const parts: Predicate[] = [];
  if (rule.from) parts.push(anyOf(rule.from.map((s) => allOf(fieldPredicates(s, SOURCE_FIELDS, SOURCE_KINDS, matchers)))));
  if (rule.to) parts.push(anyOf(rule.to.map((o) => allOf(fieldPredicates(o, OPERATION_FIELDS, OPERATION_KINDS, matchers)))));
  for (const c of rule.when ?? []) {
    const key = parseConditionKey(c.key) as ConditionKey; // validated: a known key
    if (c.values) parts.push(matchers.get(key.kind, c.values, false, key.header));
    if (c.notValues) parts.push(matchers.get(key.kind, c.notValues, true, key.header));
  }
  return allOf(parts);
}

function fieldPredicates<K extends string>(
  entry: Partial<Record<K, readonly string[]>>,
  names: readonly K[],
  kinds: Readonly<Record<K, ValueKind>>,
  matchers: MatcherCache,
): Predicate[] {
  const out: Predicate[] = [];
  for (const name of names) {
    const values = entry[name];
    // notX is the negation of the OR of its values.
    if (values) out.push(matchers.get(kinds[name], values, name.startsWith('not')));
  }
  return out;
}

/** The OR of values compared with the request attribute kind names. */
function valueMatcher(kind: ValueKind, values: readonly string[], needs: MutableNeeds, header?: string): Predicate {
  const patterns = (): StringPattern[] => values.map((v) => parsePattern(v) as StringPattern);
  switch (kind) {
    case 'principal': {
      // Istio prepends "spiffe://" to exact and prefix values; suffixes match the full principal.
      const set = compilePatterns(patterns(), { mapHead: (s) => SPIFFE + s });
      return (f) => matchPatterns(set, f.principal);
    }
    case 'namespace': {
      needs.namespaces = true;
      const set = compilePatterns(patterns());
      return (f) => {
        for (const ns of f.namespaces) if (matchPatterns(set, ns)) return true;
        return false;
      };
    }
    case 'ip':
    case 'remoteIp': {
      // remote.ip is the peer address Envoy reports: meshid does not trust X-Forwarded-For.
      needs.sourceIp = true;
      const blocks = values.map((v) => parseCidr(v) as CidrBlock);
      return (f) => inBlocks(blocks, f.sourceIp);
    }
    case 'destinationIp': {
      needs.destinationIp = true;
      const blocks = values.map((v) => parseCidr(v) as CidrBlock);
      return (f) => inBlocks(blocks, f.destinationIp);
    }
    case 'port': {
      const ports = new Set(values.map(Number));
      return (f) => f.destinationPort !== undefined && ports.has(f.destinationPort);
    }
    case 'host': {
      const withPort: StringPattern[] = [];
      const withoutPort: StringPattern[] = [];
      for (const p of patterns()) {
        if (p.kind !== 'presence' && hostValueHasPort(p.value)) withPort.push(p.kind === 'exact' ? { ...p, value: withoutTrailingDot(p.value.toLowerCase()) } : p);
        else withoutPort.push(p.kind === 'exact' || p.kind === 'suffix' ? { ...p, value: trimDot(p.value) } : p);
      }
      const full = compilePatterns(withPort, { fold: true });
      const bare = compilePatterns(withoutPort, { fold: true });
      return (f) => matchPatterns(bare, f.hostNoPort) || matchPatterns(full, f.host);
    }
    case 'sni': {
      const set = compilePatterns(patterns(), { fold: true });
      return (f) => matchPatterns(set, f.sni);
    }
    case 'method': {
      const set = compilePatterns(patterns());
      return (f) => matchPatterns(set, f.method);
    }
    case 'path': {
      const set = compilePatterns(patterns());
      return (f) => matchPatterns(set, f.path);
    }
    case 'header': {
      const name = header!;
      const set = compilePatterns(patterns());
      // Own properties only: a header named "constructor" must not find Object.prototype's.
      return (f) => matchPatterns(set, hasOwn.call(f.headers, name) ? f.headers[name] : undefined);
    }
  }
}

function trimDot(host: string): string {
  return host.length > 1 && host.endsWith('.') ? host.slice(0, -1) : host;
}

function inBlocks(blocks: readonly CidrBlock[], ip: IpAddress | undefined): boolean {
  if (ip === undefined) return false;
  for (const b of blocks) if (cidrContains(b, ip)) return true;
  return false;
}

const always: Predicate = () => true;
const hasOwn = Object.prototype.hasOwnProperty;

function allOf(ps: readonly Predicate[]): Predicate {
  if (ps.length === 0) return always;
  if (ps.length === 1) return ps[0]!;
  if (ps.length === 2) {
    const [a, b] = ps as [Predicate, Predicate];
    return (f) => a(f) && b(f);
  }
  return (f) => {
    for (let i = 0; i < ps.length; i++) if (!ps[i]!(f)) return false;
    return true;
  };
}

function anyOf(ps: readonly Predicate[]): Predicate {
  if (ps.length === 1) return ps[0]!;
  return (f) => {
    for (let i = 0; i < ps.length; i++) if (ps[i]!(f)) return true;
    return false;
  };
}

function negate(p: Predicate): Predicate {
  return (f) => !p(f);
}

/**
 * Compiles validated policies into matchers and indexes. Each rule becomes one predicate over
 * RequestFacts that matches exactly what the Envoy RBAC matcher Istio would generate for it
 * matches (pilot/pkg/security/authz/model and matcher); rules are grouped by action (and dry-run),
 * and within a group every rule whose match requires one of a few exact values (principal, path,
 * host, namespace) is filed under those values in a Map. A decision then looks at the rules filed
 * under the request's own values plus the short list of rules that could not be indexed, so 10,000
 * rules over distinct principals cost about what 10 do. Every rule keeps its global ordinal, so
 * "the first matching rule" is the same as a linear scan would find. Pure.
 */
import { type ConditionKey, OPERATION_KINDS, parseConditionKey, SOURCE_KINDS, type ValueKind } from './attributes.js';
import { type CidrBlock, cidrContains, type IpAddress, parseCidr } from '../lib/ip.js';
import type { FactNeeds, RequestFacts } from './facts.js';
import { containsPathTemplate, type EscapedSlashes, pathTemplateRegex } from './paths.js';
import { compilePatterns, matchPatterns, type PatternSet, parsePattern, patternsOf } from './patterns.js';
import {
  type AuthorizationPolicy,
  type Condition,
  OPERATION_FIELDS,
  type Operation,
  type PolicyAction,
  type Rule,
  SOURCE_FIELDS,
  type Source,
} from './policy.js';
import { trustDomainBundle, type TrustDomainBundle } from './trust-domain.js';
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
  /** The rule as matched (trust-domain aliases applied): read only to explain a default deny. */
  readonly source: Rule;
}

type Predicate = (f: RequestFacts) => boolean;

export interface RuleGroup {
  /** Policies in the group, rules or not (an ALLOW policy without rules still turns on default deny). */
  readonly policies: number;
  readonly rules: number;
  /** Every rule in ordinal order (the explanation of a default deny walks them; decisions do not). */
  readonly all: readonly CompiledRule[];
  /** Rules with no exact guard, checked for every request. */
  readonly scan: readonly CompiledRule[];
  readonly byPrincipal: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly byNamespace: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly byPath: ReadonlyMap<string, readonly CompiledRule[]>;
  /** Exact host values, lower-case, keyed on the whole authority. */
  readonly byHost: ReadonlyMap<string, readonly CompiledRule[]>;
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
  /**
   * The local trust domain and its aliases. When set, principals naming "cluster.local" (Istio's
   * name for the local trust domain) or one of these are rewritten to each of them, and
   * trustDomains values naming one are expanded to all, as Istio does; unset, values match as written.
   */
  readonly trustDomain?: string;
  readonly trustDomainAliases?: readonly string[];
  /** Escaped slashes and backslashes in paths (default 'reject': such requests are denied). */
  readonly escapedSlashes?: EscapedSlashes;
}

export function compilePolicySet(
  policies: readonly AuthorizationPolicy[],
  revision: string,
  options: CompileOptions = {},
  rateLimits: readonly RateLimitPolicy[] = [],
): CompiledPolicySet {
  const steps = compilePolicySetSteps(policies, revision, options, rateLimits);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * compilePolicySet one rule at a time: the generator yields after each rule and returns the set,
 * so a caller on the event loop can compile 10,000 rules in slices of a few milliseconds, with
 * the set usable (and swapped in) only once it is whole.
 */
export function* compilePolicySetSteps(
  policies: readonly AuthorizationPolicy[],
  revision: string,
  options: CompileOptions = {},
  rateLimits: readonly RateLimitPolicy[] = [],
): Generator<void, CompiledPolicySet, void> {
  const needs = { namespaces: false, sourceIp: false, destinationIp: false, escapedSlashes: options.escapedSlashes ?? 'reject' };
  const matchers = new MatcherCache(needs);
  const bundle = options.trustDomain === undefined ? undefined : trustDomainBundle(options.trustDomain, options.trustDomainAliases ?? []);
  const builders = {
    enforced: { DENY: new GroupBuilder(), ALLOW: new GroupBuilder(), AUDIT: new GroupBuilder() },
    dryRun: { DENY: new GroupBuilder(), ALLOW: new GroupBuilder(), AUDIT: new GroupBuilder() },
  };
  let ordinal = 0;
  for (const policy of policies) {
    const builder = builders[policy.dryRun ? 'dryRun' : 'enforced'][policy.action];
    builder.policies++;
    for (let index = 0; index < policy.rules.length; index++) {
      const written = policy.rules[index]!;
      const rule = bundle ? migrateTrustDomain(written, bundle) : written;
      const compiled: CompiledRule = {
        ordinal: ordinal++,
        ref: Object.freeze({ policy, rule: index, action: policy.action, dryRun: policy.dryRun }),
        match: compileRule(rule, policy.namespace, matchers),
        source: rule,
      };
      builder.add(compiled, options.index === false ? undefined : guardOf(rule));
      yield;
    }
  }
  const anyDryRun = policies.some((p) => p.dryRun);
  // Limits match exactly as policy rules do (trust-domain aliases, the policy's namespace included).
  const limits = compileRateLimits(rateLimits, (rule, p) => compileRule(bundle ? migrateTrustDomain(rule, bundle) : rule, p.namespace, matchers), needs);
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
  if (f.host !== undefined) best = scanList(group.byHost.get(f.host), f, best);
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

// ---- trust domains ---------------------------------------------------------------------------

/** Istio's MigrateTrustDomain: principal values and trust-domain values under the bundle. */
function migrateTrustDomain(rule: Rule, bundle: TrustDomainBundle): Rule {
  const source = (s: Source): Source => ({
    ...s,
    ...(s.principals ? { principals: bundle.replaceAliases(s.principals) } : {}),
    ...(s.notPrincipals ? { notPrincipals: bundle.replaceAliases(s.notPrincipals) } : {}),
    ...(s.trustDomains ? { trustDomains: bundle.expandAliases(s.trustDomains) } : {}),
    ...(s.notTrustDomains ? { notTrustDomains: bundle.expandAliases(s.notTrustDomains) } : {}),
  });
  const condition = (c: Condition): Condition => {
    const kind = (parseConditionKey(c.key) as ConditionKey).kind;
    const map = kind === 'principal' ? bundle.replaceAliases : kind === 'trustDomain' ? bundle.expandAliases : undefined;
    if (!map) return c;
    return { ...c, ...(c.values ? { values: map(c.values) } : {}), ...(c.notValues ? { notValues: map(c.notValues) } : {}) };
  };
  return {
    ...(rule.from ? { from: rule.from.map(source) } : {}),
    ...(rule.to ? { to: rule.to } : {}),
    ...(rule.when ? { when: rule.when.map(condition) } : {}),
  };
}

// ---- indexing --------------------------------------------------------------------------------

type IndexName = 'byPrincipal' | 'byNamespace' | 'byPath' | 'byHost';
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
  };

  private readonly all: CompiledRule[] = [];

  add(rule: CompiledRule, guard: Guard | undefined): void {
    this.rules++;
    this.all.push(rule);
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
      all: this.all,
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
  const exactAll = (values: readonly string[] | undefined, ok: (v: string) => boolean = () => true): string[] | undefined => {
    if (!values || values.length === 0) return undefined;
    const out: string[] = [];
    for (const v of values) {
      const p = parsePattern(v);
      if (p.kind !== 'exact' || !ok(p.value)) return undefined;
      out.push(p.value);
    }
    return out;
  };
  /** Exact values of field in every alternative, or from a `when` on the same attribute. */
  const collect = <T>(
    alternatives: readonly T[] | undefined,
    field: (t: T) => readonly string[] | undefined,
    whenKind: ValueKind | undefined,
    ok?: (v: string) => boolean,
  ): string[] | undefined => {
    if (alternatives && alternatives.length > 0) {
      const out: string[] = [];
      let all = true;
      for (const alt of alternatives) {
        const vals = exactAll(field(alt), ok);
        if (!vals) {
          all = false;
          break;
        }
        out.push(...vals);
      }
      if (all) return out;
    }
    if (whenKind) {
      for (const c of rule.when ?? []) {
        const key = parseConditionKey(c.key) as ConditionKey;
        if (key.kind === whenKind) {
          const vals = exactAll(c.values, ok);
          if (vals) return vals;
        }
      }
    }
    return undefined;
  };
  const principals = collect(rule.from, (s: Source) => s.principals, 'principal');
  if (principals) return principals.map((v) => ['byPrincipal', SPIFFE + v] as const);
  const paths = collect(rule.to, (o: Operation) => o.paths, undefined, (v) => !containsPathTemplate(v));
  if (paths) return paths.map((v) => ['byPath', v] as const);
  const hosts = collect(rule.to, (o: Operation) => o.hosts, undefined);
  if (hosts) return hosts.map((v) => ['byHost', v.toLowerCase()] as const);
  // A namespace without "/" or "*" (a glob anywhere in a namespace) matches iff it is one of the
  // principal's /ns/<ns>/ segments.
  const namespaces = collect(rule.from, (s: Source) => s.namespaces, 'namespace', (v) => !v.includes('/') && !v.includes('*'));
  if (namespaces) return namespaces.map((v) => ['byNamespace', v] as const);
  return undefined;
}

// ---- matchers --------------------------------------------------------------------------------

type MutableNeeds = { namespaces: boolean; sourceIp: boolean; destinationIp: boolean; escapedSlashes: EscapedSlashes };

/** What a matcher needs besides the values: the bracketed part of the key, the policy's namespace. */
interface MatcherContext {
  readonly key?: ConditionKey;
  readonly namespace?: string;
}

/**
 * Builds value matchers once per distinct (attribute, values): rules that repeat the same
 * methods or hosts share one matcher, which keeps large policy sets small and cache-friendly.
 */
class MatcherCache {
  private readonly cache = new Map<string, Predicate>();

  constructor(private readonly needs: MutableNeeds) {}

  get(kind: ValueKind, values: readonly string[], negated: boolean, ctx: MatcherContext = {}): Predicate {
    const k = ctx.key;
    const cacheKey = [negated ? '!' : '', kind, k?.header, k?.claim?.join('\u0001'), k?.filter, k?.metadataKey, kind === 'serviceAccount' ? ctx.namespace : '', ...values].join('\0');
    let m = this.cache.get(cacheKey);
    if (!m) {
      const positive = valueMatcher(kind, values, this.needs, ctx);
      m = negated ? negate(positive) : positive;
      this.cache.set(cacheKey, m);
    }
    return m;
  }
}

/** One condition of a rule, on its own: what explains a default deny. */
export interface RulePart {
  /** The field or `when` key, as written ("paths", "notMethods", "request.headers[x-env]", "from"). */
  readonly field: string;
  readonly kind: ValueKind | undefined;
  readonly values: readonly string[];
  readonly negated: boolean;
  /** Alternatives: more than one from/to entry is one part, true when any entry matches. */
  readonly alternatives: number;
  readonly test: Predicate;
}

/**
 * The conditions of a rule one by one, in the order Istio's matcher checks them (from, to, when),
 * matching exactly as compileRule's predicate does: the rule matches iff every part does. Built
 * with a cache of its own (only ever on the deny path).
 */
export function ruleParts(rule: Rule, namespace: string | undefined): RulePart[] {
  const matchers = new MatcherCache({ namespaces: true, sourceIp: true, destinationIp: true, escapedSlashes: 'reject' });
  const ctx = namespace ? { namespace } : {};
  const parts: RulePart[] = [];
  const section = <K extends string>(entries: ReadonlyArray<Partial<Record<K, readonly string[]>>> | undefined, names: readonly K[], kinds: Readonly<Record<K, ValueKind>>, label: string): void => {
    if (!entries || entries.length === 0) return;
    if (entries.length > 1) {
      parts.push({ field: label, kind: undefined, values: [], negated: false, alternatives: entries.length, test: anyOf(entries.map((e) => allOf(fieldPredicates(e, names, kinds, matchers, namespace)))) });
      return;
    }
    const entry = entries[0]!;
    for (const name of names) {
      const values = entry[name];
      if (values && values.length > 0) {
        const negated = name.startsWith('not');
        parts.push({ field: name, kind: kinds[name], values, negated, alternatives: 1, test: matchers.get(kinds[name], values, negated, ctx) });
      }
    }
  };
  section(rule.from, SOURCE_FIELDS, SOURCE_KINDS, 'from');
  section(rule.to, OPERATION_FIELDS, OPERATION_KINDS, 'to');
  for (const c of rule.when ?? []) {
    const key = parseConditionKey(c.key) as ConditionKey;
    const kctx = { key, ...ctx };
    if (c.values && c.values.length > 0) parts.push({ field: c.key, kind: key.kind, values: c.values, negated: false, alternatives: 1, test: matchers.get(key.kind, c.values, false, kctx) });
    if (c.notValues && c.notValues.length > 0) parts.push({ field: c.key, kind: key.kind, values: c.notValues, negated: true, alternatives: 1, test: matchers.get(key.kind, c.notValues, true, kctx) });
  }
  return parts;
}

function compileRule(rule: Rule, namespace: string | undefined, matchers: MatcherCache): Predicate {
  const parts: Predicate[] = [];
  if (rule.from) parts.push(anyOf(rule.from.map((s) => allOf(fieldPredicates(s, SOURCE_FIELDS, SOURCE_KINDS, matchers, namespace)))));
  if (rule.to) parts.push(anyOf(rule.to.map((o) => allOf(fieldPredicates(o, OPERATION_FIELDS, OPERATION_KINDS, matchers, namespace)))));
  for (const c of rule.when ?? []) {
    const key = parseConditionKey(c.key) as ConditionKey; // validated: a known key
    // Istio reads an empty list as "not set".
    if (c.values && c.values.length > 0) parts.push(matchers.get(key.kind, c.values, false, { key, ...(namespace ? { namespace } : {}) }));
    if (c.notValues && c.notValues.length > 0) parts.push(matchers.get(key.kind, c.notValues, true, { key, ...(namespace ? { namespace } : {}) }));
  }
  return allOf(parts);
}

function fieldPredicates<K extends string>(
  entry: Partial<Record<K, readonly string[]>>,
  names: readonly K[],
  kinds: Readonly<Record<K, ValueKind>>,
  matchers: MatcherCache,
  namespace: string | undefined,
): Predicate[] {
  const out: Predicate[] = [];
  for (const name of names) {
    const values = entry[name];
    // notX is the negation of the OR of its values; an empty list is "not set".
    if (values && values.length > 0) out.push(matchers.get(kinds[name], values, name.startsWith('not'), namespace ? { namespace } : {}));
  }
  return out;
}

/** The OR of values compared with the request attribute kind names, as Envoy's matcher would. */
function valueMatcher(kind: ValueKind, values: readonly string[], needs: MutableNeeds, ctx: MatcherContext): Predicate {
  switch (kind) {
    case 'principal': {
      // StringMatcherWithPrefix: "spiffe://" goes before exact and prefix values; `*x` is the regex
      // spiffe://.*x; `*` is .+ on the principal.
      const set = compilePatterns(patternsOf(values), { head: SPIFFE });
      return (f) => matchPatterns(set, f.principal);
    }
    case 'namespace': {
      needs.namespaces = true;
      const test = namespaceTest(values);
      return (f) => f.principal !== undefined && test(f.principal);
    }
    case 'serviceAccount': {
      const res = values.map((v) => serviceAccountRegex(ctx.namespace ?? '', v));
      return (f) => f.principal !== undefined && res.some((re) => re.test(f.principal!));
    }
    case 'trustDomain': {
      const tests = values.map(trustDomainTest);
      return (f) => f.principal !== undefined && tests.some((t) => t(f.principal!));
    }
    case 'requestPrincipal': {
      const tests = values.map(requestPrincipalTest);
      return (f) => {
        const claims = f.requestAuth?.claims;
        if (!claims) return false;
        const iss = claims.iss;
        const sub = claims.sub;
        return typeof iss === 'string' && typeof sub === 'string' && tests.some((t) => t(iss, sub));
      };
    }
    case 'audience':
    case 'presenter':
    case 'claim': {
      const path = kind === 'audience' ? ['aud'] : kind === 'presenter' ? ['azp'] : ctx.key!.claim!;
      const set = compilePatterns(patternsOf(values));
      return (f) => {
        const claims = f.requestAuth?.claims;
        return claims !== undefined && stringOrListMatches(valueAt(claims, path), set);
      };
    }
    case 'cnfBound': {
      // True when the verified token is bound (cnf["x5t#S256"]) to the peer's certificate.
      const wantBound = values.includes('true');
      const wantUnbound = values.includes('false');
      return (f) => {
        if (!f.requestAuth) return false;
        return f.requestAuth.certificateBound === true ? wantBound : wantUnbound;
      };
    }
    case 'metadata': {
      const filter = ctx.key!.filter!;
      const key = ctx.key!.metadataKey!;
      // "[v]" matches a list holding v (Istio trims every "[" and "]" at both ends); anything else a string.
      const listSet = compilePatterns(patternsOf(values.filter(isListValue).map((v) => v.replace(/^[[\]]+|[[\]]+$/g, ''))));
      const stringSet = compilePatterns(patternsOf(values.filter((v) => !isListValue(v))));
      return (f) => {
        const ns = f.metadata?.[filter];
        const v = ns !== undefined && hasOwn.call(ns, key) ? ns[key] : undefined;
        if (typeof v === 'string') return matchPatterns(stringSet, v);
        return Array.isArray(v) && v.some((el) => typeof el === 'string' && matchPatterns(listSet, el));
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
      // HostMatcher on :authority: case-insensitive, the whole authority; `*` is present_match.
      const set = compilePatterns(patternsOf(values), { fold: true, presenceNeedsValue: false });
      return (f) => matchPatterns(set, f.host);
    }
    case 'sni': {
      // StringMatcher: case-sensitive, as Istio generates it.
      const set = compilePatterns(patternsOf(values));
      return (f) => matchPatterns(set, f.sni);
    }
    case 'method': {
      const set = compilePatterns(patternsOf(values), { presenceNeedsValue: false });
      return (f) => matchPatterns(set, f.method);
    }
    case 'path': {
      const templates = values.filter(containsPathTemplate).map(pathTemplateRegex);
      const set = compilePatterns(patternsOf(values.filter((v) => !containsPathTemplate(v))));
      if (templates.length === 0) return (f) => matchPatterns(set, f.path);
      return (f) => matchPatterns(set, f.path) || (f.path !== undefined && templates.some((re) => re.test(f.path!)));
    }
    case 'header': {
      const name = ctx.key!.header!;
      const set = compilePatterns(patternsOf(values), { presenceNeedsValue: false });
      // Own properties only: a header named "constructor" must not find Object.prototype's.
      return (f) => matchPatterns(set, hasOwn.call(f.headers, name) ? f.headers[name] : undefined);
    }
  }
}

function isListValue(v: string): boolean {
  return v.startsWith('[') && v.endsWith(']');
}

const escapeRe = (s: string) => s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');

/** `.*\/ns/<ns>/.*` with each `*` of the value as `.*`, matched against the whole principal. */
function namespaceTest(values: readonly string[]): (principal: string) => boolean {
  const exact = values.filter((v) => !v.includes('*')).map((v) => `/ns/${v}/`);
  const globbed = values.filter((v) => v.includes('*')).map((v) => new RegExp(`^.*/ns/${v.split('*').map(escapeRe).join('.*')}/.*$`));
  return (p) => exact.some((e) => p.includes(e)) || globbed.some((re) => re.test(p));
}

/** Istio's serviceAccountRegex: "<sa>" takes the policy's namespace. */
function serviceAccountRegex(defaultNamespace: string, value: string): RegExp {
  const slash = value.indexOf('/');
  const ns = slash === -1 ? defaultNamespace : value.slice(0, slash);
  const sa = slash === -1 ? value : value.slice(slash + 1);
  return new RegExp(`^spiffe://.+/ns/${escapeRe(ns)}/(.+/|)sa/${escapeRe(sa)}(/.+)?$`);
}

function trustDomainTest(value: string): (principal: string) => boolean {
  if (value === '*') return (p) => p.startsWith(SPIFFE);
  if (!value.includes('*')) {
    const head = `${SPIFFE}${value}/`;
    return (p) => p.startsWith(head);
  }
  const [before, after] = value.split('*') as [string, string];
  const re = new RegExp(`^spiffe://${escapeRe(before)}[^/]*${escapeRe(after)}/.*$`);
  return (p) => re.test(p);
}

type StringTest = (s: string) => boolean;
const nonEmpty: StringTest = (s) => s !== '';
const exactly = (v: string): StringTest => (s) => s === v;
const startsWith = (v: string): StringTest => (s) => s.startsWith(v);
const endsWith = (v: string): StringTest => (s) => s.endsWith(v);

/** Istio's requestPrincipalGenerator: the value split at its last "/" into iss and sub matchers. */
function requestPrincipalTest(value: string): (iss: string, sub: string) => boolean {
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let mi: StringTest;
  let ms: StringTest;
  if (value === '*') {
    mi = nonEmpty;
    ms = nonEmpty;
  } else if (value.startsWith('*')) {
    if (found) {
      mi = iss === '*' ? nonEmpty : endsWith(iss.slice(1));
      ms = exactly(sub);
    } else {
      mi = nonEmpty;
      ms = endsWith(value.slice(1));
    }
  } else if (value.endsWith('*')) {
    if (found) {
      mi = exactly(iss);
      ms = sub === '*' ? nonEmpty : startsWith(sub.slice(0, -1));
    } else {
      mi = startsWith(value.slice(0, -1));
      ms = nonEmpty;
    }
  } else {
    mi = exactly(iss);
    ms = exactly(sub);
  }
  return (i, s) => mi(i) && ms(s);
}

/** The value at a claim path (through nested objects), or undefined. */
function valueAt(claims: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let v: unknown = claims;
  for (const k of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !hasOwn.call(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** Istio's extended JWT matcher: a string value matches, or a list with a matching string in it. */
function stringOrListMatches(v: unknown, set: PatternSet): boolean {
  if (typeof v === 'string') return matchPatterns(set, v);
  return Array.isArray(v) && v.some((el) => typeof el === 'string' && matchPatterns(set, el));
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

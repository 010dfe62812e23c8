/**
 * Why a default deny: when ALLOW policies exist and none matched, the ALLOW rules that came
 * nearest (most conditions met) and, for each, the first condition it failed, in the order the
 * matcher checks them. Computed only on that deny path, never for an allow, and bounded: at most
 * EXAMINE_LIMIT rules are looked at (those filed under the request's own principal, path, host or
 * namespace first, then the unindexed ones, then the rest in load order), each condition tested
 * once, and NEAREST_LIMIT named. Pure.
 */
import type { ValueKind } from './attributes.js';
import { type CompiledRule, type RuleGroup, type RulePart, type RuleRef, ruleParts } from './compile.js';
import type { RequestFacts } from './facts.js';

/** How many near misses a decision names. */
export const NEAREST_LIMIT = 3;
/** How many ALLOW rules one explanation looks at, at most (10,000 rules must not cost 10,000 tests). */
export const EXAMINE_LIMIT = 64;

export interface NearMiss {
  readonly rule: RuleRef;
  /** Conditions of the rule the request met, and how many the rule has. */
  readonly met: number;
  readonly conditions: number;
  /** The first condition it failed, in words: "path /api/v1/orders is not /api/orders*". */
  readonly failed: string;
}

const partsCache = new WeakMap<CompiledRule, readonly RulePart[]>();

function partsOf(r: CompiledRule): readonly RulePart[] {
  let parts = partsCache.get(r);
  if (!parts) {
    parts = ruleParts(r.source, r.ref.policy.namespace);
    partsCache.set(r, parts);
  }
  return parts;
}

/** The nearest ALLOW rules of the group for a request none of them matched, nearest first. */
export function nearestAllowRules(group: RuleGroup, f: RequestFacts, limit = NEAREST_LIMIT): NearMiss[] {
  const found: Array<{ readonly r: CompiledRule; readonly met: number; readonly conditions: number; readonly failed: RulePart }> = [];
  for (const r of candidates(group, f)) {
    const parts = partsOf(r);
    let met = 0;
    let first: RulePart | undefined;
    for (const p of parts) {
      if (p.test(f)) met++;
      else first ??= p;
    }
    // A rule that matches was not the reason for a deny (cannot happen when none matched).
    if (first) found.push({ r, met, conditions: parts.length, failed: first });
  }
  found.sort((a, b) => b.met - a.met || a.conditions - a.met - (b.conditions - b.met) || a.r.ordinal - b.r.ordinal);
  // Words only for the few that are named.
  return found.slice(0, limit).map((m) => ({ rule: m.r.ref, met: m.met, conditions: m.conditions, failed: describeFailure(m.failed, f) }));
}

/** The rules worth examining, at most EXAMINE_LIMIT, each once. */
function candidates(group: RuleGroup, f: RequestFacts): Set<CompiledRule> {
  const out = new Set<CompiledRule>();
  const add = (list: readonly CompiledRule[] | undefined): void => {
    if (!list) return;
    for (const r of list) {
      if (out.size >= EXAMINE_LIMIT) return;
      out.add(r);
    }
  };
  if (f.principal !== undefined) add(group.byPrincipal.get(f.principal));
  if (f.path !== undefined) add(group.byPath.get(f.path));
  if (f.host !== undefined) add(group.byHost.get(f.host));
  for (const ns of f.namespaces) add(group.byNamespace.get(ns));
  add(group.scan);
  add(group.all);
  return out;
}

/** "shop/allow-shop rule 0: path /api/v1/orders is not /api/orders*" */
export function nearMissText(m: NearMiss): string {
  return `${m.rule.policy.id} rule ${m.rule.rule}: ${m.failed}`;
}

/** The sentence for a decision's detail. */
export function defaultDenyDetail(nearest: readonly NearMiss[], allowPolicies: number): string {
  if (nearest.length === 0) return `no ALLOW rule to match: the ${allowPolicies === 1 ? 'ALLOW policy has' : `${allowPolicies} ALLOW policies have`} no rules`;
  return `nearest ALLOW rule${nearest.length === 1 ? '' : 's'}: ${nearest.map(nearMissText).join('; ')}`;
}

const LABELS: Readonly<Record<ValueKind, string>> = {
  principal: 'principal',
  namespace: 'source namespace',
  serviceAccount: 'source service account',
  trustDomain: 'source trust domain',
  requestPrincipal: 'request principal',
  audience: 'token audience',
  presenter: 'token presenter',
  claim: 'token claim',
  cnfBound: 'token bound to the peer certificate',
  metadata: 'metadata',
  ip: 'source ip',
  remoteIp: 'remote ip',
  destinationIp: 'destination ip',
  port: 'port',
  host: 'host',
  method: 'method',
  path: 'path',
  header: 'header',
  sni: 'sni',
};

function describeFailure(p: RulePart, f: RequestFacts): string {
  if (p.kind === undefined) return `none of the ${p.alternatives} ${p.field === 'from' ? 'sources' : 'operations'} in "${p.field}" matches`;
  const label = p.field.includes('.') ? p.field : LABELS[p.kind];
  const actual = actualValue(p, f);
  const values = p.values.length <= 4 ? p.values.join(' or ') : `${p.values.slice(0, 4).join(' or ')} or ${p.values.length - 4} more`;
  if (p.negated) return `${label} ${actual ?? '(none)'} is excluded by ${p.field} ${values}`;
  if (actual === undefined) return `no ${label} (the rule wants ${values})`;
  // Istio splits a requestPrincipals value at its last "/" into issuer and subject, so the text
  // "iss/sub" of a subject holding a "/" (a SPIFFE ID) matches no value: say so instead of "X is not X".
  if (p.kind === 'requestPrincipal' && p.values.includes(actual)) {
    return `${label} ${actual} is not matched by the same text: Istio splits the value at its last "/" into issuer and subject, so a subject containing "/" needs a "*" pattern (e.g. ${actual.slice(0, actual.indexOf('/') + 1)}*)`;
  }
  return `${label} ${actual} is not ${values}`;
}

function actualValue(p: RulePart, f: RequestFacts): string | undefined {
  switch (p.kind) {
    case 'principal':
    case 'serviceAccount':
    case 'trustDomain':
      return f.principal;
    case 'namespace':
      return f.namespaces.length > 0 ? f.namespaces.join(',') : undefined;
    case 'method':
      return f.method;
    case 'path':
      return f.path;
    case 'host':
      return f.host;
    case 'sni':
      return f.sni;
    case 'port':
      return f.destinationPort === undefined ? undefined : String(f.destinationPort);
    case 'header': {
      const name = /\[(.*)\]/.exec(p.field)?.[1]?.toLowerCase();
      return name !== undefined && Object.prototype.hasOwnProperty.call(f.headers, name) ? f.headers[name] : undefined;
    }
    case 'requestPrincipal': {
      const c = f.requestAuth?.claims;
      return c && typeof c.iss === 'string' && typeof c.sub === 'string' ? `${c.iss}/${c.sub}` : undefined;
    }
    case 'cnfBound':
      return f.requestAuth ? String(f.requestAuth.certificateBound === true) : undefined;
    default:
      return 'of the request';
  }
}

/**
 * Istio's trust-domain bundle (pilot/pkg/security/trustdomain): the local trust domain and its
 * aliases. A principal value "<td>/ns/<ns>/sa/<sa>" whose trust domain is one of them, or
 * "cluster.local" (Istio's name for "the local trust domain"), stands for the same identity in every
 * trust domain of the bundle; a trustDomains value naming one of them stands for all of them. Pure.
 */
const CLUSTER_LOCAL = 'cluster.local';

export interface TrustDomainBundle {
  readonly trustDomains: readonly string[];
  readonly replaceAliases: (principals: readonly string[]) => string[];
  readonly expandAliases: (values: readonly string[]) => string[];
}

export function trustDomainBundle(trustDomain: string, aliases: readonly string[]): TrustDomainBundle {
  const tds = [trustDomain, ...aliases];
  const replaceAliases = (principals: readonly string[]): string[] => {
    const out: string[] = [];
    for (const p of principals) {
      const parts = p.split('/');
      // Not "<td>/ns/<ns>/sa/<sa>", or a "*" trust domain: the trust domain is not enforced.
      if (parts.length !== 5 || parts[0] === '*') {
        out.push(p);
        continue;
      }
      const td = parts[0]!;
      if (!listMatches(td, tds) && td !== CLUSTER_LOCAL) {
        out.push(p);
        continue;
      }
      const mine: string[] = [];
      for (const t of tds) {
        const np = suffixMatch(t, td) ? p : [t, ...parts.slice(1)].join('/');
        if (!mine.includes(np)) mine.push(np);
      }
      out.push(...mine);
    }
    return out;
  };
  const expandAliases = (values: readonly string[]): string[] => {
    const out: string[] = [];
    for (const v of values) for (const x of tds.includes(v) ? tds : [v]) if (!out.includes(x)) out.push(x);
    return out;
  };
  return { trustDomains: tds, replaceAliases, expandAliases };
}

/** Istio's trustdomain.stringMatch: either side may be a pattern. */
function listMatches(a: string, list: readonly string[]): boolean {
  return list.some((s) => a === s || s === '*' || prefixMatch(a, s) || prefixMatch(s, a) || suffixMatch(a, s) || suffixMatch(s, a));
}

function prefixMatch(a: string, pattern: string): boolean {
  return pattern.endsWith('*') && a.startsWith(pattern.slice(0, -1));
}

function suffixMatch(a: string, pattern: string): boolean {
  return pattern.startsWith('*') && a.endsWith(pattern.slice(1));
}

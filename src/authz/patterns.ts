/**
 * Istio's string patterns, read exactly as Istio's matcher package reads them: `*` alone is
 * presence, a leading `*` makes a suffix match on the rest, a trailing `*` a prefix match, and
 * anything else is exact. A `*` anywhere else is a literal character (`a*b` matches only "a*b";
 * `*` + `/productpage*` is a suffix match on "/productpage*"): Istio accepts such values, so meshid does
 * too, and `policy lint` warns about them. Pure.
 */
export type StringPattern =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }
  | { readonly kind: 'presence' };

/** The pattern a value denotes, in Istio's order: presence, suffix, prefix, exact. */
export function parsePattern(raw: string): StringPattern {
  if (raw === '*') return { kind: 'presence' };
  if (raw.startsWith('*')) return { kind: 'suffix', value: raw.slice(1) };
  if (raw.endsWith('*')) return { kind: 'prefix', value: raw.slice(0, -1) };
  return { kind: 'exact', value: raw };
}

/** Whether a `*` in raw is read literally (Istio accepts it; it rarely means what it reads as). */
export function hasLiteralStar(raw: string): boolean {
  if (raw === '*') return false;
  const inner = raw.startsWith('*') ? raw.slice(1) : raw.endsWith('*') ? raw.slice(0, -1) : raw;
  return inner.includes('*');
}

/**
 * A compiled OR of patterns. `exact` is a Set so that a field with thousands of values costs one
 * lookup; prefixes and suffixes stay in short arrays.
 */
export interface PatternSet {
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly suffixes: readonly string[];
  readonly presence: boolean;
  /** Envoy's StringMatcher turns `*` into the regex `.+`: presence then needs a non-empty value. */
  readonly presenceNeedsValue: boolean;
  /** Prepended to exact and prefix values, and required in front of suffix matches. */
  readonly head: string;
}

export interface PatternOptions {
  /** Istio prepends "spiffe://" to principals; a suffix match then becomes the regex `spiffe://.*<suffix>`. */
  readonly head?: string;
  /** Lower-case values (the caller lower-cases the request value): case-insensitive fields. */
  readonly fold?: boolean;
  /** false for header-style presence (`present_match`), which an empty value satisfies. */
  readonly presenceNeedsValue?: boolean;
}

export function compilePatterns(patterns: readonly StringPattern[], options: PatternOptions = {}): PatternSet {
  const fold = options.fold ? (s: string) => s.toLowerCase() : (s: string) => s;
  const head = options.head ?? '';
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let presence = false;
  for (const p of patterns) {
    if (p.kind === 'presence') presence = true;
    else if (p.kind === 'exact') exact.add(fold(head + p.value));
    else if (p.kind === 'prefix') prefixes.push(fold(head + p.value));
    else suffixes.push(fold(p.value));
  }
  return { exact, prefixes, suffixes, presence, presenceNeedsValue: options.presenceNeedsValue ?? true, head: fold(head) };
}

/** Whether value (already case-folded if the set is) matches; an absent value matches nothing. */
export function matchPatterns(set: PatternSet, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (set.presence && (value !== '' || !set.presenceNeedsValue)) return true;
  if (set.exact.has(value)) return true;
  for (const p of set.prefixes) if (value.startsWith(p)) return true;
  if (set.suffixes.length > 0) {
    const head = set.head;
    if (head !== '' && !value.startsWith(head)) return false;
    for (const s of set.suffixes) if (value.length >= head.length + s.length && value.endsWith(s)) return true;
  }
  return false;
}

/** Patterns from values, for callers that match strings. */
export function patternsOf(values: readonly string[]): StringPattern[] {
  return values.map(parsePattern);
}

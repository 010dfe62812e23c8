/**
 * Istio's string patterns: exact, prefix `abc*`, suffix `*abc`, presence `*`. A `*` anywhere else
 * is refused: Istio would compare it literally (or, for namespaces, as a regex) and the rule would
 * silently mean something other than what it reads as. Pure.
 */
export type StringPattern =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }
  | { readonly kind: 'presence' };

/** The pattern a value denotes, or a message saying why it is not one. */
export function parsePattern(raw: string): StringPattern | { readonly error: string } {
  if (raw === '*') return { kind: 'presence' };
  const inner = raw.slice(1, -1);
  if (raw.length > 1 && raw.startsWith('*') && raw.endsWith('*')) {
    return { error: `"*" may be at the start or at the end of a value, not both (${JSON.stringify(raw)})` };
  }
  if (inner.includes('*')) {
    return { error: `"*" is allowed only as the first or last character, or alone (${JSON.stringify(raw)})` };
  }
  if (raw.startsWith('*')) return { kind: 'suffix', value: raw.slice(1) };
  if (raw.endsWith('*')) return { kind: 'prefix', value: raw.slice(0, -1) };
  return { kind: 'exact', value: raw };
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
}

/**
 * Compiles patterns; `map` rewrites exact and prefix values (Istio prepends "spiffe://" to
 * principals), `fold` normalises case for case-insensitive fields.
 */
export function compilePatterns(
  patterns: readonly StringPattern[],
  options: { readonly mapHead?: (s: string) => string; readonly fold?: boolean } = {},
): PatternSet {
  const fold = options.fold ? (s: string) => s.toLowerCase() : (s: string) => s;
  const head = options.mapHead ?? ((s: string) => s);
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let presence = false;
  for (const p of patterns) {
    if (p.kind === 'presence') presence = true;
    else if (p.kind === 'exact') exact.add(fold(head(p.value)));
    else if (p.kind === 'prefix') prefixes.push(fold(head(p.value)));
    else suffixes.push(fold(p.value));
  }
  return { exact, prefixes, suffixes, presence };
}

/** Whether value (already case-folded if the set is) matches; an absent value matches nothing. */
export function matchPatterns(set: PatternSet, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (set.presence || set.exact.has(value)) return true;
  for (const p of set.prefixes) if (value.startsWith(p)) return true;
  for (const s of set.suffixes) if (value.endsWith(s)) return true;
  return false;
}

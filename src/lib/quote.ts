/**
 * The one way a value from outside (a policy file, a request, a peer) is quoted into an error
 * message or a log line: as a JSON string literal of at most `max` characters of the value, with
 * what was left out counted. A 50 MB policy value or a 4 MB request path costs a line of ~200
 * characters, never a copy of itself. Pure.
 */

/** Characters of the value kept by default. */
export const QUOTE_MAX = 120;

/**
 * A string as `"abc…[+N chars]"`; anything else as its JSON text (String() when it has none),
 * bounded the same way, so `quoteBounded(5)` is `5` as JSON.stringify would print it.
 */
export function quoteBounded(value: unknown, max: number = QUOTE_MAX): string {
  if (typeof value !== 'string') return shorten(jsonText(value), max);
  if (value.length <= max) return JSON.stringify(value);
  const end = cutAt(value, max);
  return `${JSON.stringify(value.slice(0, end))}…[+${value.length - end} chars]`;
}

/** The value shortened to max characters (no quotes), for places that quote it themselves. */
export function shorten(value: string, max: number = QUOTE_MAX): string {
  if (value.length <= max) return value;
  const end = cutAt(value, max);
  return `${value.slice(0, end)}…[+${value.length - end} chars]`;
}

/** Cut on a code-point boundary: half a surrogate pair would show as an escape, not a character. */
function cutAt(text: string, max: number): number {
  const c = text.charCodeAt(max - 1);
  return c >= 0xd800 && c <= 0xdbff ? max - 1 : max;
}

function jsonText(value: unknown): string {
  if (value === undefined || typeof value === 'bigint' || typeof value === 'symbol' || typeof value === 'function') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

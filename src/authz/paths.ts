/**
 * Request paths as Envoy routes them, and Istio's path templates. Pure.
 *
 * meshid decides on the path the application will see: the path Envoy forwards after its HTTP
 * connection manager's `normalize_path` (RFC 3986 dot segments, percent-decoding of unreserved
 * characters, backslash to slash), `merge_slashes` and `path_with_escaped_slashes_action`. Deciding on
 * the normalised form means `/public/../private`, `/public/%2e%2e/private` and `//private` cannot
 * slip past a rule written for `/private`; normalising a path Envoy already normalised changes
 * nothing, so the same decision holds whether or not Envoy was configured to do it.
 */
import { quoteBounded } from '../lib/quote.js';

/** What to do with %2F, %5C (escaped slashes) and raw backslashes, Envoy's choices named. */
export type EscapedSlashes =
  /** Deny the request (reason path_escaped_slash): Envoy's REJECT_REQUEST, meshid's default. */
  | 'reject'
  /** Decode them to "/" and normalise: Envoy's UNESCAPE_AND_FORWARD. */
  | 'unescape'
  /** Leave %2F and %5C encoded (Envoy's KEEP_UNCHANGED); a raw backslash still becomes "/". */
  | 'keep';

export const ESCAPED_SLASHES: readonly EscapedSlashes[] = ['reject', 'unescape', 'keep'];

export type NormalisedPath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

const ESCAPED_SLASH = /%(2f|5c)/i;
const NEEDS_WORK = /[%\\]|\/\.|\/\//;

/** The path (query and fragment already removed) as Envoy forwards it, or why it is refused. */
export function normalisePath(path: string, escaped: EscapedSlashes): NormalisedPath {
  // The common case, a path with nothing to normalise, costs one scan.
  if (!NEEDS_WORK.test(path)) return { ok: true, path };
  let p = path;
  if (escaped === 'reject') {
    if (ESCAPED_SLASH.test(p)) return { ok: false, reason: `the path contains an escaped slash or backslash (%2F or %5C): ${quoteBounded(p, 200)}` };
    if (p.includes('\\')) return { ok: false, reason: `the path contains a backslash: ${quoteBounded(p, 200)}` };
  } else if (escaped === 'unescape') {
    p = p.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
  }
  if (!p.startsWith('/')) return { ok: true, path: p }; // "*" (OPTIONS) and the like: nothing to normalise
  p = decodeUnreserved(p).replace(/\\/g, '/');
  p = removeDotSegments(p);
  p = p.replace(/\/{2,}/g, '/');
  return { ok: true, path: p };
}


const HEX = /^[0-9A-Fa-f]{2}$/;

/** RFC 3986 6.2.2.1-2: decode %XX of unreserved characters; upper-case the hex of the others. */
function decodeUnreserved(p: string): string {
  if (!p.includes('%')) return p;
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    const hex = p.slice(i + 1, i + 3);
    if (c !== '%' || !HEX.test(hex)) {
      out += c;
      continue;
    }
    const code = parseInt(hex, 16);
    const ch = String.fromCharCode(code);
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** RFC 3986 5.2.4 remove_dot_segments, for a path that starts with "/". */
export function removeDotSegments(path: string): string {
  const segments = path.split('/'); // ["", a, b, ...]
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}

// ---- path templates (Istio 1.22+: {*} and {**}) -----------------------------------------------

export const MATCH_ONE = '{*}';
export const MATCH_ANY = '{**}';

/** RFC 3986 pchar without "*", "/" and braces, as Istio checks template literals. */
const LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export function containsPathTemplate(value: string): boolean {
  return value.includes(MATCH_ONE) || value.includes(MATCH_ANY);
}

/** Istio's CheckValidPathTemplate: why a paths value is refused, or undefined. */
export function pathTemplateProblem(value: string): string | undefined {
  const template = containsPathTemplate(value);
  // Istio's check trims the slashes, but Envoy's uri_template refuses a template without the leading "/".
  if (template && !value.startsWith('/')) return `${JSON.stringify(value)}: a path template must start with "/"`;
  let seenAny = false;
  for (const glob of value.replace(/^\/+|\/+$/g, '').split('/')) {
    if ((glob === MATCH_ONE || glob === MATCH_ANY) && seenAny) return `${JSON.stringify(value)}: {**} must be the last operator of a path template`;
    if (glob === MATCH_ONE) continue;
    if (glob === MATCH_ANY) {
      seenAny = true;
      continue;
    }
    if (/[{}]/.test(glob)) return `${JSON.stringify(value)}: "{" and "}" are allowed only in the whole-segment operators {*} and {**}`;
    if (template && !LITERAL.test(glob)) return `${JSON.stringify(value)}: segment ${JSON.stringify(glob)} is not a valid path template literal (no "*", "?" or empty segments in a template)`;
  }
  return undefined;
}

const PATH_GLOB = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]+";
const TEXT_GLOB = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=/]*";

/**
 * The regex Envoy's uri_template matcher builds for Istio's template (`{*}` -> `*`, `{**}` -> `**`):
 * `*` is one non-empty segment of pchar, `**` any run of pchar and "/"; literals match themselves;
 * the whole path (query removed) must match.
 */
export function pathTemplateRegex(value: string): RegExp {
  const body = value.slice(1).split('/');
  const parts = body.map((seg) => (seg === MATCH_ONE ? PATH_GLOB : seg === MATCH_ANY ? TEXT_GLOB : seg.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&')));
  return new RegExp(`^/${parts.join('/')}$`);
}

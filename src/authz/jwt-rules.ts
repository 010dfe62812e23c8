/**
 * `--jwt-rules FILE`: the issuers meshid verifies bearer tokens for, in the shape of Istio's
 * RequestAuthentication `jwtRules` (a RequestAuthentication document, or its `jwtRules` list, YAML
 * or JSON): issuer, audiences, jwks (inline JWKS), jwksUri (http(s) URL; meshid's extension:
 * jwksFile), fromHeaders, fromParams. outputPayloadToHeader, outputClaimToHeaders,
 * forwardOriginalToken and timeout are accepted and ignored (meshid answers Check calls, it does
 * not rewrite requests). Pure: parsing only; jwt-verify.ts loads the keys.
 */
import { parseAllDocuments } from 'yaml';
import { MeshidError } from '../lib/errors.js';

export interface JwtHeaderLocation {
  /** Lower-case header name. */
  readonly name: string;
  /** What the value starts with before the token ("Bearer "); '' for none. */
  readonly prefix: string;
}

export interface JwtRule {
  readonly issuer: string;
  /** Accepted aud values; empty: any audience (Istio's rule). */
  readonly audiences: readonly string[];
  readonly keys: { readonly kind: 'inline'; readonly jwks: string } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'uri'; readonly uri: string };
  readonly fromHeaders: readonly JwtHeaderLocation[];
  readonly fromParams: readonly string[];
}

/** Istio's default token location: `Authorization: Bearer <token>`, and the access_token parameter. */
const DEFAULT_HEADERS: readonly JwtHeaderLocation[] = [{ name: 'authorization', prefix: 'Bearer ' }];
const DEFAULT_PARAMS: readonly string[] = ['access_token'];

const KNOWN_FIELDS = new Set(['issuer', 'audiences', 'jwks', 'jwksUri', 'jwksFile', 'fromHeaders', 'fromParams', 'fromCookies', 'outputPayloadToHeader', 'outputClaimToHeaders', 'forwardOriginalToken', 'timeout']);

export function parseJwtRules(text: string, source: string): JwtRule[] {
  const bad = (where: string, why: string) => new MeshidError('jwt_rules_invalid', `${source}: ${where}: ${why}`);
  const docs = parseAllDocuments(text);
  const rules: unknown[] = [];
  docs.forEach((doc, d) => {
    if (doc.errors.length > 0) throw bad(`document ${d + 1}`, doc.errors[0]!.message);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) rules.push(...value);
    else if (isObject(value) && value.kind === 'RequestAuthentication') {
      const spec = value.spec;
      const list = isObject(spec) ? spec.jwtRules : undefined;
      if (!Array.isArray(list)) throw bad(`document ${d + 1}`, 'a RequestAuthentication needs spec.jwtRules (a list)');
      rules.push(...list);
    } else if (isObject(value) && Array.isArray(value.jwtRules)) rules.push(...(value.jwtRules as unknown[]));
    else throw bad(`document ${d + 1}`, 'expected a RequestAuthentication, {jwtRules: [...]} or a list of jwtRules');
  });
  if (rules.length === 0) throw bad('jwtRules', 'no rules');
  const seen = new Set<string>();
  return rules.map((raw, i) => {
    const where = `jwtRules[${i}]`;
    if (!isObject(raw)) throw bad(where, 'expected an object');
    for (const k of Object.keys(raw)) if (!KNOWN_FIELDS.has(k)) throw bad(`${where}.${k}`, 'unknown field');
    const issuer = raw.issuer;
    if (typeof issuer !== 'string' || issuer === '') throw bad(`${where}.issuer`, 'required (a non-empty string)');
    if (seen.has(issuer)) throw bad(`${where}.issuer`, `${JSON.stringify(issuer)} is listed twice`);
    seen.add(issuer);
    if (raw.fromCookies !== undefined) throw bad(`${where}.fromCookies`, 'not supported by meshid; use fromHeaders or fromParams');
    const audiences = stringList(raw.audiences, `${where}.audiences`, bad);
    const given = (['jwks', 'jwksUri', 'jwksFile'] as const).filter((k) => raw[k] !== undefined);
    if (given.length !== 1) throw bad(where, `exactly one of jwks, jwksUri, jwksFile is required (found ${given.length === 0 ? 'none' : given.join(', ')})`);
    const which = given[0]!;
    const v = raw[which];
    if (typeof v !== 'string' || v === '') throw bad(`${where}.${which}`, 'expected a non-empty string');
    let keys: JwtRule['keys'];
    if (which === 'jwks') keys = { kind: 'inline', jwks: v };
    else if (which === 'jwksFile') keys = { kind: 'file', path: v };
    else {
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        throw bad(`${where}.jwksUri`, `${JSON.stringify(v)} is not a URL`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad(`${where}.jwksUri`, 'expected an http(s) URL');
      keys = { kind: 'uri', uri: v };
    }
    const fromHeaders = raw.fromHeaders === undefined ? undefined : headerList(raw.fromHeaders, `${where}.fromHeaders`, bad);
    const fromParams = raw.fromParams === undefined ? undefined : stringList(raw.fromParams, `${where}.fromParams`, bad);
    // Istio: with neither location given, the defaults; with either, only what is listed.
    const none = fromHeaders === undefined && fromParams === undefined;
    return { issuer, audiences, keys, fromHeaders: fromHeaders ?? (none ? DEFAULT_HEADERS : []), fromParams: fromParams ?? (none ? DEFAULT_PARAMS : []) };
  });
}

type Bad = (where: string, why: string) => MeshidError;

function stringList(v: unknown, where: string, bad: Bad): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) throw bad(where, 'expected a list of non-empty strings');
  return v as string[];
}

function headerList(v: unknown, where: string, bad: Bad): JwtHeaderLocation[] {
  if (!Array.isArray(v)) throw bad(where, 'expected a list of {name, prefix}');
  return v.map((h, i) => {
    if (!isObject(h) || typeof h.name !== 'string' || h.name === '') throw bad(`${where}[${i}].name`, 'required (a header name)');
    if (h.prefix !== undefined && typeof h.prefix !== 'string') throw bad(`${where}[${i}].prefix`, 'expected a string');
    return { name: h.name.toLowerCase(), prefix: (h.prefix as string | undefined) ?? '' };
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

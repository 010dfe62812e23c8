/**
 * SPIFFE IDs per the SPIFFE-ID standard: spiffe://<trust-domain><path>. Parsing is strict and every
 * rejection names the rule that failed, so an operator can fix the ID without reading the spec.
 */
import { MeshidError } from '../lib/errors.js';
import { quoteBounded } from '../lib/quote.js';

export type SpiffeIdRule =
  | 'empty'
  | 'scheme'
  | 'too_long'
  | 'trust_domain_missing'
  | 'trust_domain_chars'
  | 'userinfo'
  | 'port'
  | 'query'
  | 'fragment'
  | 'percent_encoding'
  | 'path_chars'
  | 'empty_segment'
  | 'dot_segment'
  | 'trailing_slash';

export class SpiffeIdError extends MeshidError {
  constructor(
    readonly rule: SpiffeIdRule,
    readonly input: string,
    detail: string,
  ) {
    super(`spiffe_id_${rule}`, `invalid SPIFFE ID ${quoteBounded(input)}: ${detail}`);
  }
}

export interface SpiffeId {
  readonly trustDomain: string;
  /** The path, '' or starting with '/'. */
  readonly path: string;
  /** The canonical URI form. */
  readonly uri: string;
}

const SCHEME = 'spiffe://';
/** Implementations must support IDs up to this length; we refuse longer ones. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** DNS-name-sized limit the standard recommends for trust domain names. */
export const MAX_TRUST_DOMAIN_BYTES = 255;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

export function parseSpiffeId(input: string): SpiffeId {
  if (input.length === 0) throw new SpiffeIdError('empty', input, 'the ID is empty');
  if (Buffer.byteLength(input) > MAX_SPIFFE_ID_BYTES) {
    throw new SpiffeIdError('too_long', input, `longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  }
  if (!input.startsWith(SCHEME)) {
    throw new SpiffeIdError('scheme', input, `the scheme must be exactly "spiffe://" (lowercase)`);
  }
  const rest = input.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  checkTrustDomain(trustDomain, input);
  if (path !== '') checkPath(path, input);
  return Object.freeze({ trustDomain, path, uri: input });
}

/** Parses or returns the error, for callers that treat a bad ID as data rather than a failure. */
export function tryParseSpiffeId(input: string): { ok: true; id: SpiffeId } | { ok: false; error: SpiffeIdError } {
  try {
    return { ok: true, id: parseSpiffeId(input) };
  } catch (e) {
    if (e instanceof SpiffeIdError) return { ok: false, error: e };
    throw e;
  }
}

/** Validates a bare trust domain name ("cluster.local"); also accepts "spiffe://cluster.local". */
export function parseTrustDomain(input: string): string {
  const name = input.startsWith(SCHEME) ? input.slice(SCHEME.length) : input;
  if (input.startsWith(SCHEME) && name.includes('/')) {
    throw new SpiffeIdError('path_chars', input, 'a trust domain has no path');
  }
  checkTrustDomain(name, input);
  return name;
}

export function spiffeIdFromParts(trustDomain: string, segments: readonly string[]): SpiffeId {
  const bad = segments.find((s) => s.includes('/'));
  if (bad !== undefined) {
    throw new SpiffeIdError('path_chars', bad, `path segment ${JSON.stringify(bad)} must not contain "/"`);
  }
  return parseSpiffeId(`${SCHEME}${trustDomain}${segments.map((s) => `/${s}`).join('')}`);
}

/** The Kubernetes workload form used by Istio: spiffe://<td>/ns/<ns>/sa/<sa>. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  return spiffeIdFromParts(trustDomain, ['ns', namespace, 'sa', serviceAccount]);
}

export function trustDomainId(trustDomain: string): string {
  return `${SCHEME}${trustDomain}`;
}

function checkTrustDomain(td: string, input: string): void {
  if (td.length === 0) throw new SpiffeIdError('trust_domain_missing', input, 'the trust domain is missing');
  if (td.includes('@')) throw new SpiffeIdError('userinfo', input, 'user info ("user@") is not allowed');
  if (td.includes(':')) throw new SpiffeIdError('port', input, 'a port is not allowed in the trust domain');
  checkUriDelimiters(td, input);
  if (Buffer.byteLength(td) > MAX_TRUST_DOMAIN_BYTES) {
    throw new SpiffeIdError('too_long', input, `the trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  if (!TRUST_DOMAIN_RE.test(td)) {
    throw new SpiffeIdError(
      'trust_domain_chars',
      input,
      'the trust domain may contain only lowercase letters, digits, ".", "-" and "_"',
    );
  }
}

function checkPath(path: string, input: string): void {
  checkUriDelimiters(path, input);
  if (path.endsWith('/')) throw new SpiffeIdError('trailing_slash', input, 'the path must not end with "/"');
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') throw new SpiffeIdError('empty_segment', input, 'the path has an empty segment ("//")');
    if (seg === '.' || seg === '..') {
      throw new SpiffeIdError('dot_segment', input, `the path has a "${seg}" segment`);
    }
    if (!SEGMENT_RE.test(seg)) {
      throw new SpiffeIdError(
        'path_chars',
        input,
        `path segment ${JSON.stringify(seg)} may contain only letters, digits, ".", "-" and "_"`,
      );
    }
  }
}

function checkUriDelimiters(part: string, input: string): void {
  if (part.includes('?')) throw new SpiffeIdError('query', input, 'a query ("?") is not allowed');
  if (part.includes('#')) throw new SpiffeIdError('fragment', input, 'a fragment ("#") is not allowed');
  if (part.includes('%')) throw new SpiffeIdError('percent_encoding', input, 'percent-encoding is not allowed');
}


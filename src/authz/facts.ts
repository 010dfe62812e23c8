/**
 * The engine's input, and the per-request facts derived from it once (the path as Envoy routes
 * it, the lower-case authority, namespaces from the principal, parsed IPs) so that no matcher
 * recomputes them. Pure.
 */
import { quoteBounded } from '../lib/quote.js';
import { type IpAddress, parseIp } from '../lib/ip.js';
import { type EscapedSlashes, normalisePath } from './paths.js';

/**
 * What names the peer's certificate in the audit trail (the decision log) and the expiry watch,
 * computed once per certificate (absent when it could not be parsed).
 */
export interface PeerCertificateFacts {
  /** Serial number, lowercase hex. */
  readonly serial?: string;
  /** SHA-256 of the leaf's DER, lowercase hex (as `meshid ca partner list` prints it). */
  readonly sha256?: string;
  /** The leaf's notAfter, epoch ms. */
  readonly notAfter?: number;
  /** The partner the certificate belongs to: spiffe://<td>/partner/<name>, or a partner CA mapping. */
  readonly partner?: string;
}

/** What the handler learnt about the peer's certificate, when Envoy sent one. */
export type PeerCertificateStatus = PeerCertificateFacts &
  (
    /** Verified against the trust bundle; spiffeId is the certificate's identity. */
    | { readonly status: 'verified'; readonly spiffeId: string }
    /**
     * Verified against a partner CA of --partner-cas and mapped by its mapping to spiffeId
     * (spiffe://<td>/partner/<name>): that, not the principal Envoy derives from the certificate's
     * names, is the peer's identity.
     */
    | { readonly status: 'mapped'; readonly spiffeId: string }
    /** Parsed but not verified (no trust bundle configured); uriSan when it has one. */
    | { readonly status: 'unverified'; readonly uriSan?: string }
    /** Verified against a partner CA, but no mapping of that CA names it: the request is denied. */
    | { readonly status: 'unmapped'; readonly reason: string }
    /** Unparseable, or failed verification: the request is denied. */
    | { readonly status: 'invalid'; readonly reason: string }
  );

export interface AuthzInput {
  /** attributes.source.principal: the verified peer's SPIFFE ID; empty or absent for plaintext. */
  readonly principal?: string | undefined;
  readonly peerCertificate?: PeerCertificateStatus | undefined;
  /** The downstream peer's address as Envoy reports it (source.ip, and remote.ip: see README). */
  readonly sourceIp?: string | undefined;
  readonly destinationIp?: string | undefined;
  readonly destinationPort?: number | undefined;
  readonly method?: string | undefined;
  /** The :authority, possibly with a port. */
  readonly host?: string | undefined;
  /** The request target, query string included, as Envoy reports it. */
  readonly path?: string | undefined;
  /** Lower-case header names, as Envoy reports them; repeated headers joined with ",". */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly sni?: string | undefined;
  /** The request's verified end-user credential (JWT), when one was presented and checked. */
  readonly requestAuth?: RequestAuth | undefined;
  /**
   * Envoy's dynamic metadata (CheckRequest metadata_context.filter_metadata, as JSON), by filter
   * name: what `experimental.envoy.filters.<filter>[<key>]` conditions read.
   */
  readonly metadata?: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined;
}

/**
 * A verified request credential (Istio's request.auth.*): produced by the token verifier (or
 * read from Envoy's jwt_authn metadata), matched by requestPrincipals and request.auth.* keys.
 */
export interface RequestAuth {
  /** "<iss>/<sub>", as Istio spells a request principal. */
  readonly principal: string;
  /** The token's aud claim, as a list. */
  readonly audiences: readonly string[];
  /** The azp claim, when present. */
  readonly presenter?: string;
  /** Every claim of the token, for request.auth.claims[...]. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** RFC 8705: true when the token's cnf.x5t#S256 equals the peer certificate's thumbprint. */
  readonly certificateBound?: boolean;
}

/** Which derived facts the compiled policy set needs, so requests do not pay for the rest. */
export interface FactNeeds {
  readonly namespaces: boolean;
  readonly sourceIp: boolean;
  readonly destinationIp: boolean;
  /** How escaped slashes and backslashes in paths are treated (see paths.ts). */
  readonly escapedSlashes: EscapedSlashes;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const NO_NAMESPACES: readonly string[] = Object.freeze([]);

export class RequestFacts {
  /** The full principal ("spiffe://td/ns/x/sa/y"), undefined for plaintext. */
  readonly principal: string | undefined;
  /** Every <ns> of a "/ns/<ns>/" segment in the principal (Istio matches any occurrence). */
  readonly namespaces: readonly string[];
  readonly method: string | undefined;
  /**
   * Lower-case :authority exactly as sent, port included: Istio's `hosts` compare with the whole
   * authority (case-insensitively), so "example.com" does not match "example.com:8080".
   */
  readonly host: string | undefined;
  /** The path without query string and fragment, normalised as Envoy routes it (paths.ts). */
  readonly path: string | undefined;
  /** Why the request's path or authority cannot be decided on; the request is then denied. */
  readonly problem: { readonly reason: 'bad_path' | 'bad_authority'; readonly detail: string } | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** The SNI as the client sent it: Istio compares connection.sni case-sensitively. */
  readonly sni: string | undefined;
  readonly destinationPort: number | undefined;
  readonly sourceIp: IpAddress | undefined;
  readonly destinationIp: IpAddress | undefined;
  readonly requestAuth: RequestAuth | undefined;
  readonly metadata: AuthzInput['metadata'];

  constructor(input: AuthzInput, principal: string | undefined, needs: FactNeeds) {
    this.principal = principal;
    this.namespaces = needs.namespaces && principal !== undefined ? namespacesOf(principal) : NO_NAMESPACES;
    this.method = input.method || undefined;
    let problem: RequestFacts['problem'];
    const authority = input.host || undefined;
    if (authority !== undefined) {
      const why = authorityProblem(authority);
      if (why) problem = { reason: 'bad_authority', detail: why };
    }
    this.host = authority?.toLowerCase();
    let path: string | undefined;
    if (input.path) {
      const n = normalisePath(stripQuery(input.path), needs.escapedSlashes);
      if (n.ok) path = n.path;
      else problem ??= { reason: 'bad_path', detail: n.reason };
    }
    this.path = path;
    this.problem = problem;
    this.headers = input.headers ?? NO_HEADERS;
    this.sni = input.sni || undefined;
    this.destinationPort = input.destinationPort || undefined;
    this.sourceIp = needs.sourceIp && input.sourceIp ? parseIp(input.sourceIp) : undefined;
    this.destinationIp = needs.destinationIp && input.destinationIp ? parseIp(input.destinationIp) : undefined;
    this.requestAuth = input.requestAuth;
    this.metadata = input.metadata;
  }
}

const REG_NAME = /^[A-Za-z0-9\-._~!$&'()*+,;=%]+$/;

/**
 * Why an :authority is not "host[:port]" as RFC 3986/9110 and Envoy read it, or undefined. A form
 * that another parser could read as a different host (`host:443:443`, `user@host`, `[host]`,
 * spaces, a port that is not a number) must not match, or miss, a host rule: it is denied.
 */
export function authorityProblem(authority: string): string | undefined {
  const bad = (why: string) => `the authority ${quoteBounded(authority, 200)} ${why}`;
  let host = authority;
  let port: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return bad('has an unclosed "["');
    const inside = authority.slice(1, close);
    if (!inside.includes(':') || parseIp(inside) === undefined) return bad('has brackets around something that is not an IPv6 address');
    const rest = authority.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return bad('has characters after "]"');
      port = rest.slice(1);
    }
    host = '';
  } else {
    const colon = authority.indexOf(':');
    if (colon !== -1) {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
    if (host === '') return bad('has no host');
    if (authority.includes('@')) return bad('has user information ("@")');
    if (!REG_NAME.test(host)) return bad('has characters a host name cannot have');
  }
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) > 65535)) return bad('has a port that is not a number from 0 to 65535');
  return undefined;
}

export function namespacesOf(principal: string): readonly string[] {
  let i = principal.indexOf('/ns/');
  if (i === -1) return NO_NAMESPACES;
  const out: string[] = [];
  while (i !== -1) {
    const start = i + 4;
    const end = principal.indexOf('/', start);
    if (end === -1) break;
    if (end > start) out.push(principal.slice(start, end));
    i = principal.indexOf('/ns/', i + 1);
  }
  return out;
}

export function stripQuery(path: string): string {
  const q = path.indexOf('?');
  const hash = path.indexOf('#');
  const end = q === -1 ? hash : hash === -1 ? q : Math.min(q, hash);
  return end === -1 ? path : path.slice(0, end);
}

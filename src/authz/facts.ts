/**
 * The engine's input, and the per-request facts derived from it once (path without query,
 * lower-case host, namespaces from the principal, parsed IPs) so that no matcher recomputes them.
 * Pure.
 */
import { type IpAddress, parseIp } from './cidr.js';

/** What the handler learnt about the peer's certificate, when Envoy sent one. */
export type PeerCertificateStatus =
  /** Verified against the trust bundle; spiffeId is the certificate's identity. */
  | { readonly status: 'verified'; readonly spiffeId: string }
  /** Parsed but not verified (no trust bundle configured); uriSan when it has one. */
  | { readonly status: 'unverified'; readonly uriSan?: string }
  /** Unparseable, or failed verification: the request is denied. */
  | { readonly status: 'invalid'; readonly reason: string };

export interface AuthzInput {
  /** attributes.source.principal: the verified peer's SPIFFE ID; empty or absent for plaintext. */
  readonly principal?: string;
  readonly peerCertificate?: PeerCertificateStatus;
  /** The downstream peer's address as Envoy reports it (source.ip, and remote.ip: see README). */
  readonly sourceIp?: string;
  readonly destinationIp?: string;
  readonly destinationPort?: number;
  readonly method?: string;
  /** The :authority, possibly with a port. */
  readonly host?: string;
  /** The request target, query string included, as Envoy reports it. */
  readonly path?: string;
  /** Lower-case header names, as Envoy reports them; repeated headers joined with ",". */
  readonly headers?: Readonly<Record<string, string>>;
  readonly sni?: string;
  /** The request's verified end-user credential (JWT), when one was presented and checked. */
  readonly requestAuth?: RequestAuth;
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
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const NO_NAMESPACES: readonly string[] = Object.freeze([]);

export class RequestFacts {
  /** The full principal ("spiffe://td/ns/x/sa/y"), undefined for plaintext. */
  readonly principal: string | undefined;
  /** Every <ns> of a "/ns/<ns>/" segment in the principal (Istio matches any occurrence). */
  readonly namespaces: readonly string[];
  readonly method: string | undefined;
  /** Lower-case :authority as sent. */
  readonly host: string | undefined;
  /** Lower-case :authority without port and trailing dot. */
  readonly hostNoPort: string | undefined;
  /** The path without query string and fragment. */
  readonly path: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly sni: string | undefined;
  readonly destinationPort: number | undefined;
  readonly sourceIp: IpAddress | undefined;
  readonly destinationIp: IpAddress | undefined;

  constructor(input: AuthzInput, principal: string | undefined, needs: FactNeeds) {
    this.principal = principal;
    this.namespaces = needs.namespaces && principal !== undefined ? namespacesOf(principal) : NO_NAMESPACES;
    this.method = input.method || undefined;
    const host = input.host ? withoutTrailingDot(input.host.toLowerCase()) : undefined;
    this.host = host;
    this.hostNoPort = host === undefined ? undefined : stripPort(host);
    this.path = input.path ? stripQuery(input.path) : undefined;
    this.headers = input.headers ?? NO_HEADERS;
    this.sni = input.sni ? input.sni.toLowerCase() : undefined;
    this.destinationPort = input.destinationPort || undefined;
    this.sourceIp = needs.sourceIp && input.sourceIp ? parseIp(input.sourceIp) : undefined;
    this.destinationIp = needs.destinationIp && input.destinationIp ? parseIp(input.destinationIp) : undefined;
  }
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

/** "Example.COM:8080" -> "example.com"; "[::1]:80" -> "[::1]"; one trailing dot dropped. */
export function stripPort(lowerHost: string): string {
  let end = lowerHost.length;
  if (lowerHost.charCodeAt(0) === 0x5b /* [ */) {
    const close = lowerHost.indexOf(']');
    if (close !== -1) end = close + 1;
  } else {
    // Drop a trailing ":digits" (digits may be absent: "host:").
    let i = end - 1;
    while (i >= 0 && lowerHost.charCodeAt(i) >= 0x30 && lowerHost.charCodeAt(i) <= 0x39) i--;
    if (i >= 0 && lowerHost.charCodeAt(i) === 0x3a /* : */) end = i;
  }
  if (end > 1 && lowerHost.charCodeAt(end - 1) === 0x2e /* . */) end--;
  return end === lowerHost.length ? lowerHost : lowerHost.slice(0, end);
}

/**
 * "example.com.:443" -> "example.com:443", "example.com." -> "example.com": the dot ending a fully
 * qualified name names the same host, so it must not let a request slip past a DENY on the host.
 */
export function withoutTrailingDot(lowerAuthority: string): string {
  const colon = lowerAuthority.charCodeAt(0) === 0x5b /* [ */ ? lowerAuthority.indexOf(']:') + 1 : lowerAuthority.lastIndexOf(':');
  const hostEnd = colon > 0 ? colon : lowerAuthority.length;
  if (hostEnd < 2 || lowerAuthority.charCodeAt(hostEnd - 1) !== 0x2e /* . */) return lowerAuthority;
  return lowerAuthority.slice(0, hostEnd - 1) + lowerAuthority.slice(hostEnd);
}

export function stripQuery(path: string): string {
  const q = path.indexOf('?');
  const hash = path.indexOf('#');
  const end = q === -1 ? hash : hash === -1 ? q : Math.min(q, hash);
  return end === -1 ? path : path.slice(0, end);
}

/** Whether a host value names a port (compared with the full authority, not the host alone). */
export function hostValueHasPort(value: string): boolean {
  return /^(\[[^\]]*\]|[^:[]*):/.test(value);
}

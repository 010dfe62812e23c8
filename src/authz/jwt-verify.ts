/**
 * Bearer-token verification for request principals (Istio's RequestAuthentication, done by meshid
 * when Envoy's jwt_authn filter does not): the token is found where a rule says (fromHeaders,
 * fromParams), its issuer picks the rule, and jose verifies signature (asymmetric algorithms only:
 * "none" and HS* never verify, so a token "signed" with the public key as an HMAC secret fails),
 * exp/nbf (60 s leeway, as Istio), issuer and audiences. Keys: an inline JWKS, a file, or a
 * jwksUri fetched by jose with caching and a refresh when an unknown kid appears. Valid results
 * are cached per token until the token expires (bounded), so a client reusing its token pays for
 * one signature check.
 */
import fs from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { ALLOWED_JWT_ALGORITHMS, parseJwtKeys } from '../ca/auth/jwt.js';
import { joseReason } from '../identity/jose-reason.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { RequestAuth } from './facts.js';
import type { JwtRule } from './jwt-rules.js';
import { requestAuthOfPayload } from './request-auth.js';

const CLOCK_TOLERANCE_S = 60;
const CACHE_ENTRIES = 1024;

export type TokenOutcome =
  | { readonly status: 'absent' }
  /** issuer and subject: the unverified iss and sub, when the token has them (for the decision log). */
  | { readonly status: 'invalid'; readonly reason: string; readonly issuer?: string; readonly subject?: string }
  | { readonly status: 'valid'; readonly auth: RequestAuth };

interface LoadedRule {
  readonly rule: JwtRule;
  readonly keys: JWTVerifyGetKey;
}

export interface RequestAuthenticatorOptions {
  readonly now: () => number;
  /** jwksUri cache: how long fetched keys are used before a refetch (default 5 min). */
  readonly jwksCacheMs?: number;
}

export class RequestAuthenticator {
  private readonly byIssuer = new Map<string, LoadedRule>();
  private readonly headers: ReadonlyArray<{ readonly name: string; readonly prefix: string }>;
  private readonly params: readonly string[];
  private readonly cache = new Map<string, { readonly auth: RequestAuth; readonly until: number }>();

  private constructor(
    loaded: readonly LoadedRule[],
    private readonly options: RequestAuthenticatorOptions,
  ) {
    for (const l of loaded) this.byIssuer.set(l.rule.issuer, l);
    const seenH = new Set<string>();
    const headers: Array<{ name: string; prefix: string }> = [];
    const params = new Set<string>();
    for (const { rule } of loaded) {
      for (const h of rule.fromHeaders) if (!seenH.has(`${h.name}\0${h.prefix}`)) (seenH.add(`${h.name}\0${h.prefix}`), headers.push(h));
      for (const p of rule.fromParams) params.add(p);
    }
    this.headers = headers;
    this.params = [...params];
  }

  /** Loads every rule's keys (files read and inline JWKS parsed now; jwksUri fetched on first use). */
  static async create(rules: readonly JwtRule[], options: RequestAuthenticatorOptions): Promise<RequestAuthenticator> {
    const loaded: LoadedRule[] = [];
    for (const rule of rules) {
      const k = rule.keys;
      let keys: JWTVerifyGetKey;
      if (k.kind === 'uri') {
        keys = createRemoteJWKSet(new URL(k.uri), { cacheMaxAge: options.jwksCacheMs ?? 300_000, cooldownDuration: 30_000, timeoutDuration: 5000 });
      } else {
        let text = k.kind === 'inline' ? k.jwks : '';
        if (k.kind === 'file') {
          try {
            text = await fs.readFile(k.path, 'utf8');
          } catch (e) {
            throw new MeshidError('jwt_rules_invalid', `issuer ${JSON.stringify(rule.issuer)}: cannot read jwksFile ${k.path}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
          }
        }
        keys = createLocalJWKSet(parseJwtKeys(text, `issuer ${JSON.stringify(rule.issuer)} ${k.kind === 'file' ? k.path : 'jwks'}`));
      }
      loaded.push({ rule, keys });
    }
    return new RequestAuthenticator(loaded, options);
  }

  /** The token the request carries in a configured location, or undefined. */
  tokenOf(headers: Readonly<Record<string, string>>, path: string | undefined): string | undefined {
    for (const h of this.headers) {
      const v = Object.prototype.hasOwnProperty.call(headers, h.name) ? headers[h.name] : undefined;
      if (v === undefined) continue;
      if (h.prefix === '') return v.trim() || undefined;
      // Envoy compares the prefix exactly; "Bearer" is matched case-insensitively, as RFC 6750 allows.
      if (v.length > h.prefix.length && v.slice(0, h.prefix.length).toLowerCase() === h.prefix.toLowerCase()) return v.slice(h.prefix.length).trim() || undefined;
    }
    if (this.params.length > 0 && path !== undefined) {
      const q = path.indexOf('?');
      if (q !== -1) {
        const query = new URLSearchParams(path.slice(q + 1).split('#')[0]);
        for (const p of this.params) {
          const v = query.get(p);
          if (v) return v;
        }
      }
    }
    return undefined;
  }

  async verify(token: string): Promise<TokenOutcome> {
    const now = this.options.now();
    const hit = this.cache.get(token);
    if (hit && hit.until > now) return { status: 'valid', auth: hit.auth };
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch (e) {
      return { status: 'invalid', reason: `not a JWT (${errorMessage(e)})` };
    }
    const claimed = { ...(typeof unverified.iss === 'string' ? { issuer: unverified.iss } : {}), ...(typeof unverified.sub === 'string' ? { subject: unverified.sub } : {}) };
    const rule = claimed.issuer !== undefined ? this.byIssuer.get(claimed.issuer) : undefined;
    if (!rule) return { status: 'invalid', reason: `issuer ${JSON.stringify(unverified.iss ?? null)} is not configured`, ...claimed };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, rule.keys, {
        issuer: rule.rule.issuer,
        ...(rule.rule.audiences.length > 0 ? { audience: [...rule.rule.audiences] } : {}),
        algorithms: [...ALLOWED_JWT_ALGORITHMS],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(now),
      }));
    } catch (e) {
      return { status: 'invalid', reason: joseReason(e, 'the token', "the issuer's JWKS"), ...claimed };
    }
    const auth = requestAuthOfPayload(payload);
    if (!auth) return { status: 'invalid', reason: 'the token has no string "sub" claim', ...claimed };
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    const until = typeof payload.exp === 'number' ? Math.min(payload.exp * 1000, now + 300_000) : now + 60_000;
    this.cache.set(token, { auth, until });
    return { status: 'valid', auth };
  }
}


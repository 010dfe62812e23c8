/**
 * JWT-SVIDs (SPIFFE JWT-SVID standard) signed by the CA: ES256 with a "kid", "sub" the caller's
 * SPIFFE ID, "aud" as requested (required), a short "exp". The JWKS of the signing key is the
 * trust domain's JWT bundle, as the Workload API carries it (go-spiffe's jwtbundle form: keys with
 * "kid" and no "use"; JOSE libraries such as jose skip keys whose "use" is not "sig").
 */
import type { KeyObject } from 'node:crypto';
import crypto from 'node:crypto';
import { calculateJwkThumbprint, type JWK, SignJWT } from 'jose';
import type { SpiffeId } from '../identity/spiffe-id.js';
import { MeshidError } from '../lib/errors.js';

export const DEFAULT_JWT_SVID_TTL_MS = 5 * 60_000;
const MAX_AUDIENCES = 16;
const MAX_AUDIENCE_LENGTH = 512;

export interface MintedJwtSvid {
  readonly token: string;
  readonly spiffeId: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
}

export class JwtSvidIssuer {
  private constructor(
    private readonly key: KeyObject,
    readonly kid: string,
    private readonly publicJwk: JWK,
    readonly trustDomain: string,
    private readonly maxTtlMs: number,
  ) {}

  static async create(key: KeyObject, trustDomain: string, maxTtlMs = DEFAULT_JWT_SVID_TTL_MS): Promise<JwtSvidIssuer> {
    const { kty, crv, x, y } = crypto.createPublicKey(key).export({ format: 'jwk' });
    const jwk = { kty, crv, x, y } as JWK;
    // The RFC 7638 thumbprint: the same key always has the same kid, across restarts and replicas.
    const kid = await calculateJwkThumbprint(jwk, 'sha256');
    return new JwtSvidIssuer(key, kid, jwk, trustDomain, maxTtlMs);
  }

  /** The JWT bundle of the trust domain, as JWKS JSON. */
  jwks(): string {
    return JSON.stringify({ keys: [{ ...this.publicJwk, kid: this.kid }] });
  }

  async mint(identity: SpiffeId, audiences: readonly string[], requestedTtlSeconds: number | undefined, now: number): Promise<MintedJwtSvid> {
    if (audiences.length === 0) throw new MeshidError('jwt_svid_no_audience', 'a JWT-SVID needs at least one audience');
    if (audiences.length > MAX_AUDIENCES) throw new MeshidError('jwt_svid_audience', `at most ${MAX_AUDIENCES} audiences, got ${audiences.length}`);
    for (const a of audiences) {
      if (a === '' || a.length > MAX_AUDIENCE_LENGTH) throw new MeshidError('jwt_svid_audience', `every audience must be 1 to ${MAX_AUDIENCE_LENGTH} characters`);
    }
    if (requestedTtlSeconds !== undefined && !(Number.isSafeInteger(requestedTtlSeconds) && requestedTtlSeconds >= 0)) {
      throw new MeshidError('jwt_svid_ttl', `ttl_seconds must be a non-negative whole number, got ${requestedTtlSeconds}`);
    }
    const ttlMs = requestedTtlSeconds ? Math.min(requestedTtlSeconds * 1000, this.maxTtlMs) : this.maxTtlMs;
    const iat = Math.floor(now / 1000);
    const exp = iat + Math.max(1, Math.floor(ttlMs / 1000));
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setSubject(identity.uri)
      .setAudience(audiences.length === 1 ? audiences[0]! : [...audiences])
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, spiffeId: identity.uri, expiresAt: exp };
  }
}

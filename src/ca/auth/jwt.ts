/**
 * Bearer JWTs, as Istio's agent sends them: a projected Kubernetes service-account token verified
 * with jose against configured public keys (a JWKS, or PEM public keys), issuer and audience.
 * Only asymmetric algorithms are accepted: "none" and HS* are refused, since a CA must not accept
 * tokens anyone holding a shared secret (or nobody) could mint.
 */
import crypto from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, errors, type JSONWebKeySet, type JWK, type JWTPayload, jwtVerify, type JWSAlgorithm } from 'jose';
import { decodePem, encodePem } from '../../identity/pem.js';
import { spiffeIdFromServiceAccountClaims } from '../../identity/service-account.js';
import type { SpiffeId } from '../../identity/spiffe-id.js';
import { errorMessage, type ErrorCode, MeshidError } from '../../lib/errors.js';

export const ALLOWED_JWT_ALGORITHMS: readonly JWSAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Leeway for exp/nbf/iat, the same as the certificate back-date (authority.ts). */
const CLOCK_TOLERANCE_S = 60;

export interface JwtConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly trustDomain: string;
}

function refuse(code: ErrorCode, detail: string): MeshidError {
  return new MeshidError(code, `bearer token refused: ${detail}`);
}

/** Parses --jwt-keys: a JWKS JSON document, or one or more PEM public keys. */
export function parseJwtKeys(text: string, source: string): JSONWebKeySet {
  const fail = (detail: string) => new MeshidError('jwt_keys_invalid', `${source}: ${detail}`);
  const trimmed = text.trim();
  let keys: JWK[];
  if (trimmed.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch (e) {
      throw fail(`not valid JSON: ${errorMessage(e)}`);
    }
    const list = (doc as { keys?: unknown }).keys;
    if (!Array.isArray(list)) throw fail('a JWKS needs a "keys" array');
    keys = list as JWK[];
  } else {
    let blocks;
    try {
      blocks = decodePem(text);
    } catch (e) {
      throw fail(errorMessage(e));
    }
    if (blocks.length === 0) throw fail('neither a JWKS (JSON) nor PEM public keys');
    keys = blocks.map((b, i) => {
      if (b.label.includes('PRIVATE')) throw fail(`PEM block ${i + 1} is a private key; give the public key only`);
      try {
        const key = crypto.createPublicKey(encodePem(b.label, b.der));
        return key.export({ format: 'jwk' }) as JWK;
      } catch (e) {
        throw fail(`PEM block ${i + 1} ("${b.label}") is not a usable public key (${errorMessage(e)})`);
      }
    });
  }
  if (keys.length === 0) throw fail('no keys');
  keys.forEach((k, i) => {
    if (typeof k !== 'object' || k === null) throw fail(`key ${i + 1} is not a JWK object`);
    if (k.kty === 'oct') throw fail(`key ${i + 1} is symmetric (kty "oct"); only public keys verify tokens here`);
    if (k.kty !== 'RSA' && k.kty !== 'EC' && k.kty !== 'OKP') throw fail(`key ${i + 1} has unsupported kty ${JSON.stringify(k.kty)}`);
    if ('d' in k) throw fail(`key ${i + 1} is a private key; give the public key only`);
    try {
      crypto.createPublicKey({ key: k as crypto.JsonWebKey, format: 'jwk' });
    } catch (e) {
      throw fail(`key ${i + 1} is not a usable public key (${errorMessage(e)})`);
    }
  });
  return { keys };
}

export class JwtAuthenticator {
  private readonly keySet: ReturnType<typeof createLocalJWKSet>;

  constructor(
    jwks: JSONWebKeySet,
    private readonly config: JwtConfig,
  ) {
    this.keySet = createLocalJWKSet(jwks);
  }

  /** The workload identity a token proves; throws an unauthenticated MeshidError saying why not. */
  async authenticate(token: string, now: number): Promise<SpiffeId> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw refuse('jwt_malformed', 'not a JWT (cannot decode its header)');
    }
    if (typeof alg !== 'string' || !(ALLOWED_JWT_ALGORITHMS as readonly string[]).includes(alg)) {
      throw refuse('jwt_algorithm_refused', `algorithm ${JSON.stringify(alg)} is not allowed (allowed: ${ALLOWED_JWT_ALGORITHMS.join(', ')})`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keySet, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: [...ALLOWED_JWT_ALGORITHMS],
        requiredClaims: ['exp'],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(now),
      }));
    } catch (e) {
      throw this.explain(e, alg);
    }
    return this.identityOf(payload);
  }

  private explain(e: unknown, alg: string): MeshidError {
    if (e instanceof errors.JWTExpired) {
      const exp = typeof e.payload.exp === 'number' ? ` at ${new Date(e.payload.exp * 1000).toISOString()}` : '';
      return refuse('jwt_expired', `the token expired${exp}`);
    }
    if (e instanceof errors.JWTClaimValidationFailed) {
      const p = e.payload;
      if (e.claim === 'iss') return refuse('jwt_wrong_issuer', `issuer ${JSON.stringify(p.iss)} is not the expected ${JSON.stringify(this.config.issuer)}`);
      if (e.claim === 'aud') return refuse('jwt_wrong_audience', `audience ${JSON.stringify(p.aud)} does not include ${JSON.stringify(this.config.audience)}`);
      if (e.claim === 'nbf') return refuse('jwt_not_yet_valid', 'the token is not valid yet (nbf)');
      return refuse('jwt_claim_invalid', `claim "${e.claim}" ${e.reason === 'missing' ? 'is missing' : `is invalid (${e.message})`}`);
    }
    if (e instanceof errors.JWSSignatureVerificationFailed) return refuse('jwt_signature_invalid', 'the signature does not verify with any configured key');
    if (e instanceof errors.JWKSNoMatchingKey) return refuse('jwt_no_matching_key', `no configured key can verify an ${alg} token with this key ID`);
    if (e instanceof errors.JOSEError) return refuse('jwt_malformed', `malformed token (${e.message})`);
    return refuse('jwt_invalid', errorMessage(e));
  }

  private identityOf(payload: JWTPayload): SpiffeId {
    return spiffeIdFromServiceAccountClaims(payload, this.config.trustDomain);
  }
}

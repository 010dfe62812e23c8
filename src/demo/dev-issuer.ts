/**
 * The development token issuer behind `meshid dev token` and the dev token endpoint: one ES256
 * key kept in <state-dir>/token-issuer/key.pem (0600, created on first use, reused after) and its
 * public JWKS next to it (jwks.json), which is what a verifier is given: the CA's --jwt-keys for
 * service-account tokens, an agent's --jwt-rules jwksFile for access tokens.
 *
 * It mints two kinds of JWT, both with issuer DEV_ISSUER unless told otherwise:
 * - service-account tokens shaped like Kubernetes' projected tokens (sub
 *   system:serviceaccount:<ns>:<sa> and the kubernetes.io claim, aud istio-ca by default), which
 *   the CA maps to spiffe://<td>/ns/<ns>/sa/<sa> as it maps real ones;
 * - access tokens for a client identified by its SPIFFE ID (sub), optionally bound to a client
 *   certificate (RFC 8705 cnf.x5t#S256, the thumbprint jwt-binding.ts checks).
 * Development only: anyone who can read the key can mint any identity the CA trusts it for.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK, type JWTPayload, SignJWT } from 'jose';
import { derThumbprint } from '../authz/jwt-binding.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../config/defaults.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../identity/keys.js';
import { workloadSpiffeId } from '../identity/spiffe-id.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { errorMessage, MeshidError } from '../lib/errors.js';

/** The `iss` of dev tokens: what `meshid ca --jwt-issuer` and a jwtRules issuer name. */
export const DEV_ISSUER = 'meshid-dev';
export const DEV_SA_AUDIENCE = DEFAULT_TOKEN_AUDIENCE;
export const ISSUER_DIR = 'token-issuer';

export interface DevIssuerFiles {
  readonly dir: string;
  readonly key: string;
  readonly jwks: string;
  /** The jwtRules an agent's --jwt-rules takes to verify the access tokens (written by writeJwtRules). */
  readonly jwtRules: string;
  /** The token endpoint's serving certificate, for its clients to trust. */
  readonly endpointCertificate: string;
}

export function devIssuerFiles(stateDir: string): DevIssuerFiles {
  const dir = path.join(path.resolve(stateDir), ISSUER_DIR);
  return {
    dir,
    key: path.join(dir, 'key.pem'),
    jwks: path.join(dir, 'jwks.json'),
    jwtRules: path.join(dir, 'jwt-rules.yaml'),
    endpointCertificate: path.join(dir, 'endpoint.pem'),
  };
}

/** "NS/SA" as a namespace and service-account name, checked as the CA will map them. */
export function parseServiceAccount(s: string): { readonly namespace: string; readonly name: string } {
  const m = /^([^/]+)\/([^/]+)$/.exec(s.trim());
  if (!m) throw new MeshidError('config_value_invalid', `expected NAMESPACE/SERVICE-ACCOUNT, e.g. shop/orders, got ${JSON.stringify(s)}`);
  // Any trust domain will do: this checks that the names make path segments of a SPIFFE ID.
  workloadSpiffeId('example.org', m[1]!, m[2]!);
  return { namespace: m[1]!, name: m[2]! };
}

export class DevTokenIssuer {
  private constructor(
    private readonly key: KeyObject,
    readonly kid: string,
    private readonly publicJwk: JWK,
    readonly files: DevIssuerFiles,
    readonly issuer: string,
    /** The key was made by this call (first use of the state directory). */
    readonly created: boolean,
  ) {}

  /** Loads the key under stateDir, or creates it (exclusively: two first uses at once share one key); writes jwks.json. */
  static async open(stateDir: string, issuer = DEV_ISSUER): Promise<DevTokenIssuer> {
    const files = devIssuerFiles(stateDir);
    fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    let created = false;
    try {
      fs.writeFileSync(files.key, privateKeyPkcs8Pem(generateKeyPairSync('ec-p256').privateKey), { mode: 0o600, flag: 'wx' });
      created = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new MeshidError('input_unreadable', `cannot write the dev token key ${files.key}: ${errorMessage(e)}`);
    }
    let key: KeyObject;
    try {
      key = crypto.createPrivateKey(fs.readFileSync(files.key, 'utf8'));
    } catch (e) {
      throw new MeshidError('input_unreadable', `cannot read the dev token key ${files.key}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)} (delete it to make a new one)`);
    }
    const d = key.asymmetricKeyDetails;
    if (key.asymmetricKeyType !== 'ec' || d?.namedCurve !== 'prime256v1') throw new MeshidError('input_unreadable', `${files.key} is not an EC P-256 key (delete it to make a new one)`);
    const { kty, crv, x, y } = crypto.createPublicKey(key).export({ format: 'jwk' });
    const jwk = { kty, crv, x, y } as JWK;
    const kid = await calculateJwkThumbprint(jwk, 'sha256');
    const issuerObj = new DevTokenIssuer(key, kid, jwk, files, issuer, created);
    writeFileAtomically(files.jwks, `${issuerObj.jwks()}\n`, 0o644);
    return issuerObj;
  }

  /** The public JWKS of the key, as JSON. */
  jwks(): string {
    return JSON.stringify({ keys: [{ ...this.publicJwk, kid: this.kid, alg: 'ES256', use: 'sig' }] });
  }

  /** Writes files.jwtRules: the rule (issuer, audiences, jwksFile) under which an agent verifies this issuer's access tokens. */
  writeJwtRules(audiences: readonly string[]): string {
    const text = [
      '# Written by meshid: verify the dev token endpoint\'s access tokens (meshid agent --jwt-rules FILE).',
      'jwtRules:',
      `  - issuer: ${JSON.stringify(this.issuer)}`,
      `    audiences: ${JSON.stringify(audiences)}`,
      `    jwksFile: ${JSON.stringify(this.files.jwks)}`,
      '',
    ].join('\n');
    writeFileAtomically(this.files.jwtRules, text, 0o644);
    return this.files.jwtRules;
  }

  /** A service-account token as the Kubernetes API server projects one. */
  serviceAccountToken(sa: { namespace: string; name: string }, audiences: readonly string[], ttlMs: number, now: number): Promise<string> {
    return this.sign(
      {
        sub: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        'kubernetes.io': { namespace: sa.namespace, serviceaccount: { name: sa.name, uid: crypto.randomUUID() } },
      },
      audiences,
      ttlMs,
      now,
    );
  }

  /**
   * An access token for client (its SPIFFE ID, RFC 8705 tls_client_auth's client id), bound to
   * the DER of its certificate when given (cnf.x5t#S256); client_id is the same ID.
   */
  accessToken(client: string, audiences: readonly string[], ttlMs: number, now: number, boundTo?: Uint8Array): Promise<string> {
    return this.sign({ sub: client, client_id: client, ...(boundTo ? { cnf: { 'x5t#S256': derThumbprint(boundTo) } } : {}) }, audiences, ttlMs, now);
  }

  private sign(claims: JWTPayload, audiences: readonly string[], ttlMs: number, now: number): Promise<string> {
    if (audiences.length === 0) throw new MeshidError('config_value_invalid', 'a token needs at least one audience');
    const iat = Math.floor(now / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(audiences.length === 1 ? audiences[0]! : [...audiences])
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + Math.max(1, Math.floor(ttlMs / 1000)))
      .setJti(crypto.randomUUID())
      .sign(this.key);
  }
}

/**
 * JWT-SVIDs for the Workload API: minted by the CA for this workload (the agent authenticates with
 * its current X.509-SVID over mTLS, so "sub" is exactly that identity), cached per audience set
 * until half their lifetime is gone, and validated against the trust domain's JWKS, which is
 * fetched from the CA at start, after every X.509 rotation and every refreshMs.
 *
 * A CA without meshid's JwtSvidService (istiod, istio-csr) answers UNIMPLEMENTED; every JWT
 * method then answers UNAVAILABLE with a message that says so.
 */
import crypto from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { parseSpiffeId, trustDomainId } from '../identity/spiffe-id.js';
import type { Clock, Timer } from '../lib/clock.js';
import { joseReason } from '../identity/jose-reason.js';
import { errorMessage, isMeshidError, MeshidError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { IdentitySource } from '../identity/svid.js';
import type { JwtBundleSet, JwtSvidSource } from './server.js';

type Failure = { ok: false; kind: string; grpcCode: number; message: string };
type Auth = { kind: 'mtls'; certChainPem: string; privateKeyPem: string };

/** What this needs of the CA client (src/ca/client.ts has this shape). */
export interface JwtSigner {
  mintJwtSvid(audiences: readonly string[], auth: Auth, ttlSeconds?: number): Promise<{ ok: true; response: { token: string; spiffeId: string; expiresAt: number } } | Failure>;
  fetchJwtBundle(auth: Auth): Promise<{ ok: true; response: { trustDomain: string; jwks: string } } | Failure>;
}

export interface JwtSvidsOptions {
  readonly signer: JwtSigner;
  readonly source: IdentitySource;
  readonly clock: Clock;
  readonly logger: Logger;
  /** For messages: where the CA is. */
  readonly caAddress: string;
  /** Re-fetch of the JWKS (default 5 min). */
  readonly refreshMs?: number;
  /** Lifetime asked of the CA (default: the CA's). */
  readonly ttlSeconds?: number;
}

const UNIMPLEMENTED = 12;
const MAX_CACHED = 64;
const DEFAULT_REFRESH_MS = 5 * 60_000;
/** Asymmetric algorithms only: a JWKS never holds a shared secret, and "none" is never valid. */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const CLOCK_TOLERANCE_S = 30;

interface Cached {
  readonly token: string;
  readonly spiffeId: string;
  /** Reuse until this time (epoch ms): half the lifetime. */
  readonly freshUntil: number;
}

export class JwtSvids implements JwtSvidSource {
  private readonly log: Logger;
  private readonly cache = new Map<string, Cached>();
  private readonly listeners = new Set<() => void>();
  private set: (JwtBundleSet & { readonly keys: ReadonlyMap<string, ReturnType<typeof createLocalJWKSet>> }) | undefined;
  private inflight: Promise<JwtBundleSet> | undefined;
  private refresh: Timer | undefined;
  private lastSvid: string | undefined;
  private readonly unsubscribe: () => void;
  private stopped = false;

  constructor(private readonly options: JwtSvidsOptions) {
    this.log = options.logger.child({ component: 'jwt-svid' });
    // A new X.509-SVID may come from a CA with new keys: look again.
    this.unsubscribe = options.source.subscribe(() => {
      const version = options.source.currentSvid()?.version;
      if (version === undefined || version === this.lastSvid) return;
      const first = this.lastSvid === undefined;
      this.lastSvid = version;
      if (!first || this.set) void this.bundles().catch(() => {});
    });
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    this.refresh?.cancel();
  }

  currentBundles(): JwtBundleSet | undefined {
    return this.set && { bundles: this.set.bundles, version: this.set.version };
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async fetchSvid(audiences: readonly string[]): Promise<{ spiffeId: string; token: string }> {
    const key = [...new Set(audiences)].sort().join('\0');
    const now = this.options.clock.now();
    const hit = this.cache.get(key);
    if (hit && now < hit.freshUntil) return hit;
    const r = await this.options.signer.mintJwtSvid([...new Set(audiences)], this.auth(), this.options.ttlSeconds);
    if (!r.ok) throw this.unavailable('mint a JWT-SVID', r);
    const expiresAtMs = r.response.expiresAt * 1000;
    const fresh: Cached = { token: r.response.token, spiffeId: r.response.spiffeId, freshUntil: now + Math.max(0, expiresAtMs - now) / 2 };
    this.cache.delete(key);
    this.cache.set(key, fresh);
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.log.debug({ audience: audiences, expiresAt: new Date(expiresAtMs).toISOString() }, 'JWT-SVID minted');
    return fresh;
  }

  /** Fetches the JWKS (one request at a time) and arms the next refresh. */
  bundles(): Promise<JwtBundleSet> {
    this.inflight ??= this.fetchBundles().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  async validate(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    if (!this.set) await this.bundles();
    const set = this.set!;
    let payload: Record<string, unknown>;
    try {
      // The key is chosen by the trust domain of "sub", read before verification and checked after.
      const unverifiedSub = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
      const td = typeof unverifiedSub.sub === 'string' ? parseSpiffeId(unverifiedSub.sub).trustDomain : undefined;
      const keys = td === undefined ? undefined : set.keys.get(trustDomainId(td));
      if (!keys) throw new MeshidError('jwt_svid_unknown_trust_domain', `no JWT bundle for the trust domain of "sub" (${String(unverifiedSub.sub)})`);
      const verified = await jwtVerify(token, keys, {
        audience,
        algorithms: ALGORITHMS,
        requiredClaims: ['sub', 'aud', 'exp'],
        currentDate: new Date(this.options.clock.now()),
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      payload = verified.payload as Record<string, unknown>;
    } catch (e) {
      if (isMeshidError(e)) throw e;
      throw new MeshidError('jwt_svid_invalid', `the JWT-SVID is not valid: ${joseReason(e, 'it', 'the bundle')}`);
    }
    const id = parseSpiffeId(String(payload.sub));
    return { spiffeId: id.uri, claims: payload };
  }

  // ---- internals ------------------------------------------------------------------------------

  private async fetchBundles(): Promise<JwtBundleSet> {
    this.refresh?.cancel();
    this.refresh = this.options.clock.setTimer(this.options.refreshMs ?? DEFAULT_REFRESH_MS, () => {
      if (!this.stopped) void this.bundles().catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'JWT bundle refresh failed; keeping the last one'));
    });
    const r = await this.options.signer.fetchJwtBundle(this.auth());
    if (!r.ok) throw this.unavailable('fetch the JWT bundle', r);
    const id = trustDomainId(r.response.trustDomain);
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(r.response.jwks) as JSONWebKeySet;
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0 || jwks.keys.some((k) => !k.kid)) throw new Error('expected {"keys": [...]} with a "kid" on every key');
    } catch (e) {
      throw new MeshidError('jwt_bundle_invalid', `the CA at ${this.options.caAddress} sent an unusable JWKS: ${errorMessage(e)}`);
    }
    const text = JSON.stringify(jwks);
    const version = crypto.createHash('sha256').update(id).update('\0').update(text).digest('hex').slice(0, 16);
    if (this.set?.version !== version) {
      this.set = { bundles: { [id]: text }, version, keys: new Map([[id, createLocalJWKSet(jwks)]]) };
      this.log.info({ trustDomain: r.response.trustDomain, keys: jwks.keys.length, version }, 'JWT bundle changed');
      for (const l of [...this.listeners]) l();
    }
    return this.currentBundles()!;
  }

  private auth(): Auth {
    const svid = this.options.source.currentSvid();
    if (!svid) throw new MeshidError('jwt_svid_no_x509', 'no X.509-SVID yet to authenticate to the CA with');
    return { kind: 'mtls', certChainPem: svid.certChainPem, privateKeyPem: svid.privateKeyPem };
  }

  private unavailable(what: string, f: Failure): MeshidError {
    if (f.grpcCode === UNIMPLEMENTED) {
      return new MeshidError('jwt_svid_unsupported_by_ca',
        `JWT-SVIDs are not available: the CA at ${this.options.caAddress} cannot ${what} (it answered UNIMPLEMENTED; istiod and istio-csr issue X.509-SVIDs only, meshid ca issues both)`);
    }
    if (f.kind === 'invalid_argument') return new MeshidError('jwt_svid_refused', `the CA refused to ${what}: ${f.message}`);
    return new MeshidError('jwt_svid_ca_failed', `cannot ${what}: ${f.message}`);
  }
}


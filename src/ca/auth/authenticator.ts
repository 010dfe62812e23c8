/**
 * Who is calling, in a fixed order: (1) an mTLS client certificate that is a still-valid SVID this
 * CA issued (renewal), (2) a bearer JWT, (3) a development static token. The identity comes only
 * from the proof, never from the CSR.
 */
import type { SpiffeId } from '../../identity/spiffe-id.js';
import { MeshidError } from '../../lib/errors.js';
import type { Authority } from '../authority.js';
import type { JwtAuthenticator } from './jwt.js';
import { verifyPeerSvid } from './peer-svid.js';
import type { StaticTokens } from './static-tokens.js';
import { MAX_BEARER_TOKEN_BYTES } from '../../lib/grpc-server.js';

export type AuthMethod = 'mtls' | 'jwt' | 'static-token';

export interface CallerCredentials {
  /** DER of the client certificate that TLS verified against the trust bundle, if any. */
  readonly peerCertificate?: Uint8Array;
  /** The raw value of the authorization metadata, if any. */
  readonly authorization?: string;
}

export interface Authenticated {
  readonly identity: SpiffeId;
  readonly method: AuthMethod;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export interface AuthenticatorOptions {
  readonly authority: Authority;
  readonly jwt?: JwtAuthenticator;
  readonly staticTokens?: StaticTokens;
  /** Whether the CA revoked a serial (lowercase hex): a revoked client certificate does not authenticate. */
  readonly isRevoked?: (serial: string) => boolean;
}

export class CallerAuthenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  /** Throws an unauthenticated MeshidError that says what was presented and why it failed. */
  async authenticate(credentials: CallerCredentials, now: number): Promise<Authenticated> {
    let mtlsFailure: MeshidError | undefined;
    if (credentials.peerCertificate) {
      try {
        return { identity: verifyPeerSvid(credentials.peerCertificate, this.options.authority, now, this.options.isRevoked), method: 'mtls' };
      } catch (e) {
        if (!(e instanceof MeshidError)) throw e;
        mtlsFailure = e;
      }
    }
    if (credentials.authorization === undefined) {
      throw mtlsFailure ?? new MeshidError('no_credentials', 'no credentials: present a client certificate issued by this CA or "authorization: Bearer <token>" metadata');
    }
    if (credentials.authorization.length > MAX_BEARER_TOKEN_BYTES) {
      throw new MeshidError('token_too_large', `bearer token refused: ${credentials.authorization.length} bytes, over the ${MAX_BEARER_TOKEN_BYTES / 1024} KiB limit`);
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(credentials.authorization);
    if (!m) throw new MeshidError('authorization_malformed', 'the authorization metadata is not of the form "Bearer <token>"');
    return this.authenticateToken(m[1]!, now);
  }

  private async authenticateToken(token: string, now: number): Promise<Authenticated> {
    const { jwt, staticTokens } = this.options;
    let jwtFailure: MeshidError | undefined;
    if (jwt && JWT_SHAPE.test(token)) {
      try {
        return { identity: await jwt.authenticate(token, now), method: 'jwt' };
      } catch (e) {
        if (!(e instanceof MeshidError)) throw e;
        jwtFailure = e;
      }
    }
    const fromStatic = staticTokens?.lookup(token);
    if (fromStatic) return { identity: fromStatic, method: 'static-token' };
    if (jwtFailure) throw jwtFailure;
    if (JWT_SHAPE.test(token) && !staticTokens) {
      throw new MeshidError('jwt_not_configured', 'bearer token refused: it is a JWT but this CA has no --jwt-keys to verify it');
    }
    throw new MeshidError('token_unknown',
      staticTokens ? 'bearer token refused: not a valid JWT and not a known static token' : 'bearer token refused: not a JWT (and no --static-tokens are configured)',
    );
  }
}

/**
 * The agent's side of the CA protocol. One TLS channel for token-authenticated calls and one for
 * the current mTLS identity (replaced, and the old one closed, when the identity rotates). Every
 * call has a deadline; every failure comes back as a typed result, never as an exception.
 */
import crypto from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { parseCertificate } from '../identity/certificate.js';
import { decodePem } from '../identity/pem.js';
import { type ErrorKind, errorMessage } from '../lib/errors.js';
import { errorKindOf } from '../lib/grpc-status.js';
import { jwtSvidServiceDefinition } from './jwt-protocol.js';
import { RETRY_PUSHBACK_KEY } from './limits.js';
import { revocationServiceDefinition } from './revocation-protocol.js';
import {
  type CaAuth,
  type CaCallResult,
  type CaFailure,
  type CaResult,
  caServiceDefinition,
  type CreateCertificateMethod,
  type IstioCertificateRequest,
  type IstioCertificateResponse__Output,
} from './protocol.js';

export interface CaClientOptions {
  /** host:port */
  address: string;
  /** Trust anchors for the CA's TLS certificate. */
  caBundlePem: string;
  /** The name to verify in the CA's certificate when it differs from the address host. */
  serverName?: string;
  /** Default 10000. */
  deadlineMs?: number;
}

export const DEFAULT_CA_DEADLINE_MS = 10_000;

/** One FetchCRL answer: the CA's CRL number, and the CRL (DER) unless unchanged. */
export interface FetchedCrl {
  readonly crlNumber: number;
  readonly crlDer?: Buffer;
  /** SPIFFE IDs the CA revoked as identities (sent with a CRL). */
  readonly revokedIds: readonly string[];
}

/** What a call needs of a method: its path, how to encode the request and decode the response. */
interface CaMethod<Req, Res> {
  readonly path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

interface CaChannel {
  readonly client: grpc.Client;
  /** Closed by us: a handshake it still attempts is refused (see CaClient.retire). */
  retired: boolean;
}

export class CaClient {
  private readonly method: CreateCertificateMethod;
  private readonly deadlineMs: number;
  private tokenChannel: CaChannel | undefined;
  private mtlsChannel: (CaChannel & { readonly fingerprint: string }) | undefined;
  private closed = false;

  constructor(private readonly options: CaClientOptions) {
    this.method = caServiceDefinition().CreateCertificate;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_CA_DEADLINE_MS;
  }

  /** Never throws for CA or network failures: they come back as { ok: false }. */
  /** validitySeconds: an int64, as a decimal string when it does not fit a double exactly. */
  async createCertificate(csrPem: string, auth: CaAuth, validitySeconds?: number | string): Promise<CaResult> {
    const request: IstioCertificateRequest = { csr: csrPem, ...(validitySeconds !== undefined ? { validity_duration: validitySeconds } : {}) };
    const r = await this.call(this.method, request, auth);
    return r.ok ? validateResponse(r.response) : r;
  }

  /** A JWT-SVID from meshid's JwtSvidService (UNIMPLEMENTED from CAs that have none, such as istiod). */
  async mintJwtSvid(audiences: readonly string[], auth: CaAuth, ttlSeconds?: number): Promise<CaCallResult<{ token: string; spiffeId: string; expiresAt: number }>> {
    const r = await this.call(jwtSvidServiceDefinition().MintJWTSVID, { audience: [...audiences], ...(ttlSeconds ? { ttl_seconds: ttlSeconds } : {}) }, auth);
    if (!r.ok) return r;
    const { token, spiffe_id: spiffeId, expires_at: expiresAt } = r.response ?? {};
    if (!token || !spiffeId || !expiresAt) return failure('internal', grpc.status.INTERNAL, 'the CA returned a malformed JWT-SVID response (token, spiffe_id or expires_at missing)');
    return { ok: true, response: { token, spiffeId, expiresAt: Number(expiresAt) } };
  }

  /** The JWKS that verifies the CA's JWT-SVIDs. */
  async fetchJwtBundle(auth: CaAuth): Promise<CaCallResult<{ trustDomain: string; jwks: string }>> {
    const r = await this.call(jwtSvidServiceDefinition().FetchJWTBundle, {}, auth);
    if (!r.ok) return r;
    const { trust_domain: trustDomain, jwks } = r.response ?? {};
    if (!trustDomain || !jwks) return failure('internal', grpc.status.INTERNAL, 'the CA returned a malformed JWT bundle response (trust_domain or jwks missing)');
    return { ok: true, response: { trustDomain, jwks } };
  }

  /**
   * The CA's CRL from meshid's RevocationService (UNIMPLEMENTED from CAs that have none): a long
   * poll that the CA answers once its CRL number is above knownCrlNumber, or after waitMs with
   * "unchanged" (crlDer undefined). The call's deadline is waitMs plus the usual deadline.
   */
  async fetchCrl(knownCrlNumber: number, waitMs: number, auth: CaAuth): Promise<CaCallResult<FetchedCrl>> {
    const r = await this.call(revocationServiceDefinition().FetchCRL, { known_crl_number: knownCrlNumber, wait_ms: waitMs }, auth, waitMs + this.deadlineMs);
    if (!r.ok) return r;
    const crlNumber = Number(r.response?.crl_number ?? 0);
    if (!Number.isSafeInteger(crlNumber) || crlNumber < 0) return failure('internal', grpc.status.INTERNAL, 'the CA returned a malformed CRL response (crl_number)');
    const der = r.response?.crl;
    return { ok: true, response: { crlNumber, ...(der && der.length > 0 ? { crlDer: der } : {}), revokedIds: r.response?.revoked_ids ?? [] } };
  }

  private async call<Req, Res>(method: CaMethod<Req, Res>, request: Req, auth: CaAuth, deadlineMs = this.deadlineMs): Promise<CaCallResult<Res | undefined>> {
    if (this.closed) return failure('failed_precondition', grpc.status.FAILED_PRECONDITION, 'the CA client is closed');
    let channel: CaChannel;
    try {
      channel = this.channelFor(auth);
    } catch (e) {
      return failure('invalid_argument', grpc.status.INVALID_ARGUMENT, `cannot set up TLS to the CA: ${errorMessage(e)}`);
    }
    const metadata = new grpc.Metadata();
    if (auth.kind === 'token') metadata.set('authorization', `Bearer ${auth.token}`);
    return new Promise((resolve) => {
      try {
        channel.client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          metadata,
          { deadline: Date.now() + deadlineMs },
          (err, response) => {
            if (err) {
              if (err.code === grpc.status.UNAVAILABLE) this.retire(channel);
              const f = failure(errorKindOf(err.code), err.code, `CA ${this.options.address}: ${err.details || err.message}`);
              const retryAfterMs = pushbackOf(err.metadata);
              resolve(retryAfterMs === undefined ? f : { ...f, retryAfterMs });
            } else resolve({ ok: true, response });
          },
        );
      } catch (e) {
        resolve(failure('unavailable', grpc.status.UNAVAILABLE, `CA ${this.options.address}: ${errorMessage(e)}`));
      }
    });
  }

  close(): void {
    this.closed = true;
    if (this.tokenChannel) this.retire(this.tokenChannel);
    if (this.mtlsChannel) this.retire(this.mtlsChannel);
  }

  /**
   * Closes a channel and forgets it. Called for the previous identity's channel, at close(), and for
   * a channel that could not reach the CA: grpc-js backs off reconnecting on its own (1 s growing to
   * 2 min) and meanwhile fails calls at once without dialing, which would override the SVID
   * manager's retry schedule (a retry right after the CA came back would fail untried). With the
   * channel gone, every attempt the manager schedules dials afresh.
   *
   * grpc-js 1.14 has a closed channel whose connection had failed dial once more after its backoff
   * (a subchannel in TRANSIENT_FAILURE keeps its reconnect flag), and nothing would ever close that
   * connection. A retired channel therefore refuses every TLS handshake it still attempts.
   */
  private retire(channel: CaChannel): void {
    channel.retired = true;
    channel.client.close();
    if (this.tokenChannel === channel) this.tokenChannel = undefined;
    if (this.mtlsChannel === channel) this.mtlsChannel = undefined;
  }

  private channelFor(auth: CaAuth): CaChannel {
    if (auth.kind === 'token') {
      this.tokenChannel ??= this.openChannel(null, null);
      return this.tokenChannel;
    }
    const fingerprint = crypto.createHash('sha256').update(auth.certChainPem).update('\0').update(auth.privateKeyPem).digest('hex');
    if (this.mtlsChannel?.fingerprint !== fingerprint) {
      const channel = Object.assign(this.openChannel(Buffer.from(auth.privateKeyPem), Buffer.from(auth.certChainPem)), { fingerprint });
      if (this.mtlsChannel) this.retire(this.mtlsChannel); // the previous identity's connection is no longer wanted
      this.mtlsChannel = channel;
    }
    return this.mtlsChannel;
  }

  /**
   * A channel of its own (a local subchannel pool: no connection or backoff shared with another
   * channel). For a CA addressed by IP, the certificate is checked against that IP (an IP SAN) while
   * the TLS server name carries a placeholder: RFC 6066 forbids IP addresses in SNI, and Node warns
   * (DEP0123) when asked to send one.
   */
  private openChannel(privateKey: Buffer | null, certChain: Buffer | null): CaChannel {
    const { serverName, address } = this.options;
    const ip = serverName ? undefined : ipHostOf(address);
    const name = serverName ?? (ip ? IP_SNI_PLACEHOLDER : undefined);
    const channel: { client?: grpc.Client; retired: boolean } = { retired: false };
    const verify: grpc.VerifyOptions = {
      checkServerIdentity: (host, cert) => (channel.retired ? new Error('this CA channel was closed') : tls.checkServerIdentity(ip ?? host, cert)),
    };
    const options: grpc.ChannelOptions = {
      'grpc.use_local_subchannel_pool': 1,
      ...(name ? { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': serverName ?? address } : {}),
    };
    channel.client = new grpc.Client(address, grpc.credentials.createSsl(Buffer.from(this.options.caBundlePem), privateKey, certChain, verify), options);
    return channel as CaChannel;
  }
}

/** A CA's hint is honoured up to this; a larger value (a broken or hostile CA) must not park renewals for hours. */
export const MAX_PUSHBACK_MS = 10 * 60_000;

/**
 * The grpc-retry-pushback-ms trailer (gRFC A6): a non-negative decimal integer of milliseconds.
 * Anything else is ignored (our own backoff applies), and the value is capped at MAX_PUSHBACK_MS.
 */
export function pushbackOf(metadata: grpc.Metadata | undefined): number | undefined {
  const raw = metadata?.get(RETRY_PUSHBACK_KEY)[0];
  if (typeof raw !== 'string' || !/^\d{1,12}$/.test(raw)) return undefined;
  return Math.min(Number(raw), MAX_PUSHBACK_MS);
}

const IP_SNI_PLACEHOLDER = 'ca.ip-address.invalid';

/** The host of "host:port" or "[v6]:port" when it is an IP literal. */
function ipHostOf(address: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):\d+$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  return host && isIP(host) ? host : undefined;
}

function failure(kind: ErrorKind, grpcCode: number, message: string): CaFailure {
  return { ok: false, kind, grpcCode, message };
}

/** A chain the agent can use: at least leaf and root, each element exactly one certificate. */
function validateResponse(response: IstioCertificateResponse__Output | undefined): CaResult {
  const chain = response?.cert_chain ?? [];
  const bad = (detail: string) => failure('internal', grpc.status.INTERNAL, `the CA returned a malformed response: ${detail}`);
  if (chain.length === 0) return bad('no certificates');
  if (chain.length < 2) return bad('a chain of one certificate (expected the leaf and at least the root)');
  for (const [i, pem] of chain.entries()) {
    try {
      const blocks = decodePem(pem);
      if (blocks.length !== 1 || blocks[0]!.label !== 'CERTIFICATE') return bad(`element ${i + 1} is not exactly one PEM certificate`);
      parseCertificate(blocks[0]!.der);
    } catch (e) {
      return bad(`element ${i + 1}: ${errorMessage(e)}`);
    }
  }
  return { ok: true, chainPem: [...chain] };
}

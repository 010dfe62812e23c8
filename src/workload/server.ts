/**
 * The SPIFFE Workload API (service SpiffeWorkloadAPI) on a Unix socket, for workloads without an
 * Envoy. Transport only: the X.509-SVID and bundle come from the SVID manager (the IdentitySource
 * the SDS server reads too), JWT-SVIDs from a JwtSvidSource.
 *
 * As the standard says: a call without the metadata "workload.spiffe.io: true" is refused with
 * INVALID_ARGUMENT; the X.509 streams send the full state first as soon as an SVID exists, then
 * again on every change; a call that comes before the first SVID waits (up to its deadline, which
 * grpc-js enforces on the server) instead of failing.
 */
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../lib/clock.js';
import { errorMessage, isMeshidError, type ErrorCode, MeshidError } from '../lib/errors.js';
import { serverOptions, shutdownGracefully } from '../lib/grpc-server.js';
import { grpcStatusOf } from '../lib/grpc-status.js';
import { type BoundSocket, listenOnUnixSocket } from '../lib/unix-socket.js';
import type { Logger } from '../observability/logger.js';
import type { IdentitySource } from '../identity/svid.js';
import {
  type Empty,
  type JWTBundlesResponse,
  type JWTSVIDRequest__Output,
  type JWTSVIDResponse,
  SECURITY_HEADER,
  SECURITY_HEADER_VALUE,
  toStruct,
  type ValidateJWTSVIDRequest__Output,
  type ValidateJWTSVIDResponse,
  workloadApiDefinition,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from './protocol.js';
import { x509BundlesMessage, x509SvidMessage } from './x509-messages.js';

/** What the server needs for the JWT methods, declared here; src/workload/jwt-svids.ts implements it. */
export interface JwtSvidSource {
  /** A JWT-SVID of this workload for the audiences; throws MeshidError (unavailable when the CA cannot mint). */
  fetchSvid(audiences: readonly string[]): Promise<{ readonly spiffeId: string; readonly token: string }>;
  /** The JWKS (JSON text) per trust domain ID, fetching it when not known yet; throws MeshidError. */
  bundles(): Promise<JwtBundleSet>;
  /** The bundles last known; undefined before the first fetch. */
  currentBundles(): JwtBundleSet | undefined;
  /** Verifies a JWT-SVID for audience against the bundles; throws MeshidError (invalid_argument for a bad token). */
  validate(token: string, audience: string): Promise<{ readonly spiffeId: string; readonly claims: Record<string, unknown> }>;
  /** listener runs when the bundles change; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

export interface JwtBundleSet {
  /** JWKS JSON per trust domain ID (spiffe://<td>). */
  readonly bundles: Readonly<Record<string, string>>;
  readonly version: string;
}

export interface WorkloadApiConfig {
  readonly workloadApiSocket: string;
  readonly workloadApiSocketMode: number;
}

export interface WorkloadApiDeps {
  readonly source: IdentitySource;
  readonly jwt?: JwtSvidSource;
  readonly logger: Logger;
  readonly clock: Clock;
}

export interface WorkloadApiServer {
  readonly socketPath: string;
  serving(): boolean;
  /** Open streams (all methods). */
  streams(): number;
  /** Ends every stream with UNAVAILABLE, stops listening, removes the socket. Idempotent. */
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 2000;
const ROLE = { name: 'workload-api', label: 'Workload API' };
/** The standard puts no bound on audiences; these keep one call from asking the CA for something absurd. */
const MAX_AUDIENCES = 16;
const MAX_AUDIENCE_LENGTH = 512;
const MAX_TOKEN_LENGTH = 16 * 1024;

const CLOSING = new MeshidError('workload_api_closing', 'the Workload API server is shutting down');

function statusOf(e: unknown): Partial<grpc.StatusObject> {
  const err = isMeshidError(e) ? e : new MeshidError('workload_api_internal', `internal error: ${errorMessage(e)}`);
  return { code: grpcStatusOf(err.kind), details: err.message };
}

function invalid(code: ErrorCode, message: string): MeshidError {
  return new MeshidError(code, message);
}

/** The standard's guard: refuse calls that do not carry workload.spiffe.io: true. */
function checkSecurityHeader(metadata: grpc.Metadata): void {
  const values = metadata.get(SECURITY_HEADER).map(String);
  if (values.length !== 1 || values[0] !== SECURITY_HEADER_VALUE) {
    throw invalid('workload_api_security_header', `security header missing from request: every Workload API call must carry the metadata "${SECURITY_HEADER}: ${SECURITY_HEADER_VALUE}"`);
  }
}

export async function startWorkloadApiServer(config: WorkloadApiConfig, deps: WorkloadApiDeps): Promise<WorkloadApiServer> {
  const log = deps.logger.child({ component: 'workload-api' });
  const { source, jwt } = deps;
  const open = new Set<(e: MeshidError) => void>();
  let state: 'starting' | 'serving' | 'closing' = 'starting';

  /**
   * A server stream that sends snapshot() whenever its version changes; nothing while it is
   * undefined (before the first SVID, or after the SVID expired without a renewal).
   */
  function serveStream<T>(
    method: string,
    call: grpc.ServerWritableStream<Empty, T>,
    snapshot: () => { version: string; message: T } | undefined,
    subscribe: (listener: () => void) => () => void,
  ): (e: unknown) => void {
    try {
      if (state !== 'serving') throw CLOSING;
      checkSecurityHeader(call.metadata);
      if (method === 'FetchJWTBundles' && !jwt) throw noJwt();
    } catch (e) {
      log.warn({ method, err: errorMessage(e) }, 'Workload API call refused');
      call.emit('error', statusOf(e));
      return () => {};
    }
    let sent: string | undefined;
    let ended = false;
    const push = () => {
      if (ended) return;
      let next: { version: string; message: T } | undefined;
      try {
        next = snapshot();
      } catch (e) {
        return fail(e);
      }
      if (!next || next.version === sent) return;
      sent = next.version;
      call.write(next.message);
    };
    const finish = () => {
      if (ended) return;
      ended = true;
      unsubscribe();
      open.delete(fail);
    };
    const fail = (e: unknown) => {
      if (ended) return;
      finish();
      call.emit('error', statusOf(e));
    };
    const unsubscribe = subscribe(push);
    open.add(fail);
    call.on('cancelled', finish);
    call.on('close', finish);
    call.on('error', finish);
    if (snapshot() === undefined) log.debug({ method }, 'stream waits for its first content');
    push();
    return fail;
  }

  /** A unary answer from an async handler; refused without the header; abandoned if the caller goes. */
  function serveUnary<Req, Res>(method: string, call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>, handle: (req: Req) => Promise<Res>): void {
    let settled = false;
    const answer = (e: unknown, res?: Res) => {
      if (settled) return;
      settled = true;
      open.delete(fail);
      if (e) {
        log.warn({ method, err: errorMessage(e) }, 'Workload API call refused');
        callback(statusOf(e));
      } else callback(null, res);
    };
    const fail = (e: MeshidError) => answer(e);
    try {
      if (state !== 'serving') throw CLOSING;
      checkSecurityHeader(call.metadata);
    } catch (e) {
      return answer(e);
    }
    open.add(fail);
    call.on('cancelled', () => {
      settled = true;
      open.delete(fail);
    });
    handle(call.request).then((res) => answer(undefined, res), (e: unknown) => answer(e));
  }

  const x509Snapshot = () => {
    const svid = source.currentSvid();
    const bundle = source.currentBundle();
    if (!svid || !bundle) return undefined;
    return { version: `${svid.version}/${bundle.version}`, message: x509SvidMessage(svid, bundle) };
  };
  const bundleSnapshot = () => {
    const bundle = source.currentBundle();
    return bundle && { version: bundle.version, message: x509BundlesMessage(bundle) };
  };

  const noJwt = () => new MeshidError('jwt_svid_unsupported', 'this agent does not serve JWT-SVIDs');

  const fetchJwtSvid = async (req: JWTSVIDRequest__Output): Promise<JWTSVIDResponse> => {
    const audiences = req.audience ?? [];
    if (audiences.length === 0) throw invalid('jwt_svid_no_audience', 'FetchJWTSVID: audience is required (at least one)');
    if (audiences.length > MAX_AUDIENCES) throw invalid('jwt_svid_audience', `FetchJWTSVID: at most ${MAX_AUDIENCES} audiences, got ${audiences.length}`);
    for (const a of audiences) {
      if (a === '' || a.length > MAX_AUDIENCE_LENGTH) throw invalid('jwt_svid_audience', `FetchJWTSVID: every audience must be 1 to ${MAX_AUDIENCE_LENGTH} characters`);
    }
    await svidExists();
    const own = source.currentSvid()?.spiffeId;
    if (req.spiffe_id && req.spiffe_id !== own) {
      throw new MeshidError('jwt_svid_not_entitled', `FetchJWTSVID: this workload is ${own}, not ${req.spiffe_id}`);
    }
    if (!jwt) throw noJwt();
    const svid = await jwt.fetchSvid(audiences);
    return { svids: [{ spiffe_id: svid.spiffeId, svid: svid.token }] };
  };

  const validateJwtSvid = async (req: ValidateJWTSVIDRequest__Output): Promise<ValidateJWTSVIDResponse> => {
    if (!req.audience) throw invalid('jwt_svid_no_audience', 'ValidateJWTSVID: audience is required');
    if (!req.svid) throw invalid('jwt_svid_missing', 'ValidateJWTSVID: svid is required');
    if (req.svid.length > MAX_TOKEN_LENGTH) throw invalid('jwt_svid_invalid', `ValidateJWTSVID: the token is longer than ${MAX_TOKEN_LENGTH} characters`);
    if (!jwt) throw noJwt();
    const r = await jwt.validate(req.svid, req.audience);
    return { spiffe_id: r.spiffeId, claims: toStruct(r.claims) };
  };

  /** Resolves once an SVID exists (JWT-SVIDs are minted over mTLS with it); the caller's deadline bounds the wait. */
  const svidExists = (): Promise<void> =>
    new Promise((resolve) => {
      if (source.currentSvid()) return resolve();
      const unsubscribe = source.subscribe(() => {
        if (!source.currentSvid()) return;
        unsubscribe();
        resolve();
      });
    });

  const server = new grpc.Server(serverOptions());
  server.addService(workloadApiDefinition(), {
    FetchX509SVID: (call: grpc.ServerWritableStream<Empty, X509SVIDResponse>) => serveStream('FetchX509SVID', call, x509Snapshot, (l) => source.subscribe(l)),
    FetchX509Bundles: (call: grpc.ServerWritableStream<Empty, X509BundlesResponse>) => serveStream('FetchX509Bundles', call, bundleSnapshot, (l) => source.subscribe(l)),
    FetchJWTSVID: (call: grpc.ServerUnaryCall<JWTSVIDRequest__Output, JWTSVIDResponse>, cb: grpc.sendUnaryData<JWTSVIDResponse>) => serveUnary('FetchJWTSVID', call, cb, fetchJwtSvid),
    FetchJWTBundles: (call: grpc.ServerWritableStream<Empty, JWTBundlesResponse>) => {
      const fail = serveStream('FetchJWTBundles', call, () => {
        const set = jwt?.currentBundles();
        if (!set) return undefined;
        const bundles = Object.fromEntries(Object.entries(set.bundles).map(([td, jwks]) => [td, Buffer.from(jwks)]));
        return { version: set.version, message: { bundles } };
      }, (l) => jwt?.subscribe(l) ?? (() => {}));
      // Fetched once here (a CA that cannot mint JWT-SVIDs ends the stream); later changes arrive through subscribe.
      jwt?.bundles().catch(fail);
    },
    ValidateJWTSVID: (call: grpc.ServerUnaryCall<ValidateJWTSVIDRequest__Output, ValidateJWTSVIDResponse>, cb: grpc.sendUnaryData<ValidateJWTSVIDResponse>) =>
      serveUnary('ValidateJWTSVID', call, cb, validateJwtSvid),
  } as grpc.UntypedServiceImplementation);

  let socket: BoundSocket;
  try {
    socket = await listenOnUnixSocket(server, config.workloadApiSocket, config.workloadApiSocketMode, deps.clock, ROLE);
  } catch (e) {
    server.forceShutdown();
    throw e;
  }
  state = 'serving';
  log.info({ socket: socket.path, mode: `0${config.workloadApiSocketMode.toString(8)}` }, 'SPIFFE Workload API listening');

  let closing: Promise<void> | undefined;
  const close = async () => {
    state = 'closing';
    socket.remove();
    for (const fail of [...open]) fail(CLOSING);
    await shutdownGracefully(server, deps.clock, SHUTDOWN_GRACE_MS);
    log.info({ socket: socket.path }, 'SPIFFE Workload API closed');
  };
  return {
    socketPath: socket.path,
    serving: () => state === 'serving',
    streams: () => open.size,
    close: () => (closing ??= close()),
  };
}

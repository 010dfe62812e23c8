/**
 * The Envoy SDS v3 server (envoy.service.secret.v3.SecretDiscoveryService) on a Unix socket.
 * Transport only: secrets come from an IdentitySource and from files (see secret-catalog.ts), the
 * per-stream protocol lives in secret-stream.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { type DiscoveryRequest__Output, envoyProtos } from '../envoy/protos.js';
import type { Clock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { grpcStatusOf } from '../lib/grpc-status.js';
import type { Logger } from '../observability/logger.js';
import type { IdentitySource } from '../identity/svid.js';
import { noopSdsMetrics, type SdsMetrics } from './metrics.js';
import type { NamedCertificateSource } from './named-certs.js';
import type { SecretKind } from './resource-names.js';
import { type CatalogUsage, type PartnerRootsSource, SecretCatalog } from './secret-catalog.js';
import type { EncodedSecret } from './secret-encoding.js';
import { requestedName, SecretStream, type StreamContext } from './secret-stream.js';
import { serverOptions, shutdownGracefully } from '../lib/grpc-server.js';
import { type BoundSocket, listenOnUnixSocket } from '../lib/unix-socket.js';

/** Streams are ended at once on close; this bounds what is still being written. */
const SHUTDOWN_GRACE_MS = 2000;

const SDS_SOCKET_ROLE = { name: 'sds', label: 'SDS' };

export interface SdsServerConfig {
  /** Socket path (--sds-socket). */
  readonly sdsSocket: string;
  /** File mode of the socket (--sds-socket-mode), e.g. 0o600. */
  readonly sdsSocketMode: number;
  /** Quiet period after a watched secret file changes before it is re-read (default 100 ms). */
  readonly fileDebounceMs?: number;
  /** Directories file-cert:/file-root: secrets may be read from (--sds-file-dirs); default none. */
  readonly sdsFileDirs?: readonly string[];
}

export interface SdsServerDeps {
  readonly source: IdentitySource;
  /** The partner CAs (--partner-cas) the `partners` secret adds to the bundle; absent: not served. */
  readonly partners?: PartnerRootsSource | undefined;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: SdsMetrics;
  /** Named certificates (--named-cert), served as named:<name>. */
  readonly named?: NamedCertificateSource;
}

export interface SdsUsage extends CatalogUsage {
  readonly streams: number;
  /** FetchSecrets calls waiting for their secret to exist. */
  readonly pendingFetches: number;
}

export interface SdsServer {
  /** The absolute socket path. */
  readonly socketPath: string;
  /** True from a successful start until close() begins. */
  serving(): boolean;
  /** Open StreamSecrets streams. */
  streams(): number;
  /** What the server holds right now (streams, secret feeds, file watches): for readiness and leak checks. */
  usage(): SdsUsage;
  /** Ends every stream with UNAVAILABLE, stops listening, removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const UNAVAILABLE_CLOSING = new MeshidError('sds_closing', 'the SDS server is shutting down');

function statusOf(error: MeshidError): Partial<grpc.StatusObject> {
  return { code: grpcStatusOf(error.kind), details: error.message };
}

/**
 * The SDS service with responses written as pre-encoded bytes (see secret-encoding.ts), and
 * requests read as protobufjs decodes them, without the conversion to plain objects: every ACK of
 * every stream is decoded, and the fields the server reads (node.id, resource_names, type_url,
 * version_info, response_nonce, error_detail) read the same on the decoded message (absent ones
 * are "", [] or null there instead of undefined, which the stream code treats alike).
 */
export function sdsServiceDefinition(): grpc.ServiceDefinition {
  const { sdsService: base, DiscoveryRequest } = envoyProtos();
  const bytes = (b: Buffer) => b;
  const request = (b: Buffer) => DiscoveryRequest.decode(b) as unknown as DiscoveryRequest__Output;
  return {
    ...base,
    StreamSecrets: { ...base.StreamSecrets, requestDeserialize: request, responseSerialize: bytes },
    FetchSecrets: { ...base.FetchSecrets, requestDeserialize: request, responseSerialize: bytes },
  };
}

export async function startSdsServer(config: SdsServerConfig, deps: SdsServerDeps): Promise<SdsServer> {
  const logger = deps.logger.child({ component: 'sds' });
  const metrics = deps.metrics ?? noopSdsMetrics;
  const catalog = new SecretCatalog({ source: deps.source, partners: deps.partners, clock: deps.clock, logger, metrics, fileDebounceMs: config.fileDebounceMs ?? 100, fileSecrets: { allowedDirs: config.sdsFileDirs ?? [] }, ...(deps.named ? { named: deps.named } : {}) });
  const ctx: StreamContext = { catalog, logger, metrics };
  const streams = new Set<SecretStream>();
  const fetches = new Set<() => void>();
  let state: 'starting' | 'serving' | 'closing' = 'starting';

  const streamSecrets = (call: grpc.ServerDuplexStream<DiscoveryRequest__Output, Buffer>) => {
    if (state !== 'serving') {
      call.emit('error', statusOf(UNAVAILABLE_CLOSING));
      return;
    }
    let open = true;
    const stream = new SecretStream(ctx, {
      send: (bytes) => {
        if (open) call.write(bytes);
      },
      fail: (error) => {
        if (!open) return;
        finish();
        call.emit('error', statusOf(error));
      },
    });
    const finish = () => {
      if (!open) return;
      open = false;
      stream.close();
      streams.delete(stream);
      metrics.streamClosed();
    };
    streams.add(stream);
    metrics.streamOpened();
    call.on('data', (req: DiscoveryRequest__Output) => stream.handle(req));
    call.on('end', () => {
      // Envoy half-closed: nothing more will be asked, so the stream is over.
      finish();
      call.end();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
    call.on('close', finish);
  };

  const fetchSecrets = (call: grpc.ServerUnaryCall<DiscoveryRequest__Output, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const reject = (error: MeshidError) => {
      metrics.requestRejected(error.code);
      logger.warn({ node: call.request.node?.id, code: error.code, err: error.message }, 'SDS fetch refused');
      callback(statusOf(error));
    };
    if (state !== 'serving') return reject(UNAVAILABLE_CLOSING);
    let settled = false;
    let release = () => {};
    const settle = () => {
      settled = true;
      fetches.delete(abort);
      release();
    };
    const answer = (secret: EncodedSecret, kind: SecretKind) => {
      if (settled) return;
      settle();
      metrics.responseSent(kind);
      callback(null, secret.response);
    };
    // Called on client cancel (including an expired deadline, which grpc-js enforces) and on close.
    const abort = () => {
      if (settled) return;
      settle();
      if (state === 'closing') callback(statusOf(UNAVAILABLE_CLOSING));
    };
    try {
      const name = requestedName(call.request, 'FetchSecrets');
      const subscription = catalog.subscribe(name, {
        deliver: (secret) => answer(secret, subscription.kind),
        fail: (error) => {
          if (settled) return;
          settle();
          reject(error);
        },
      });
      release = () => subscription.release();
      const current = subscription.current();
      if (current) return answer(current, subscription.kind);
      fetches.add(abort);
      call.on('cancelled', abort);
      logger.debug({ node: call.request.node?.id, resource: name }, 'SDS fetch waits for the secret to exist');
    } catch (e) {
      settle();
      reject(e instanceof MeshidError ? e : new MeshidError('sds_internal', `internal error: ${errorMessage(e)}`));
    }
  };

  const deltaSecrets = (call: grpc.ServerDuplexStream<unknown, unknown>) => {
    call.emit('error', {
      code: grpc.status.UNIMPLEMENTED,
      details: 'DeltaSecrets (incremental SDS) is not implemented; configure Envoy for state-of-the-world SDS (api_type GRPC), which StreamSecrets serves',
    });
  };

  const server = new grpc.Server(serverOptions());
  server.addService(sdsServiceDefinition(), {
    StreamSecrets: streamSecrets,
    FetchSecrets: fetchSecrets,
    DeltaSecrets: deltaSecrets,
  } as grpc.UntypedServiceImplementation);

  let socket: BoundSocket;
  try {
    socket = await listenOnUnixSocket(server, config.sdsSocket, config.sdsSocketMode, deps.clock, SDS_SOCKET_ROLE);
  } catch (e) {
    server.forceShutdown();
    await catalog.close();
    throw e;
  }
  state = 'serving';
  logger.info({ socket: socket.path, mode: `0${config.sdsSocketMode.toString(8)}` }, 'SDS server listening');

  let closing: Promise<void> | undefined;
  const close = async () => {
    state = 'closing';
    socket.remove();
    for (const abort of [...fetches]) abort();
    for (const stream of [...streams]) stream.terminate(UNAVAILABLE_CLOSING);
    await catalog.close();
    await shutdownGracefully(server, deps.clock, SHUTDOWN_GRACE_MS);
    logger.info({ socket: socket.path }, 'SDS server closed');
  };

  return {
    socketPath: socket.path,
    serving: () => state === 'serving',
    streams: () => streams.size,
    usage: () => ({ ...catalog.usage(), streams: streams.size, pendingFetches: fetches.size }),
    close: () => (closing ??= close()),
  };
}

/**
 * One StreamSecrets stream, with Envoy's state-of-the-world semantics:
 *
 * - the first request is a fresh subscription, whatever version it carries (after a reconnect
 *   Envoy sends the version it holds; it still expects an answer);
 * - the node is taken from the first request (Envoy may send it only there);
 * - a request whose nonce is not the last one sent is stale and ignored;
 * - a NACK (error_detail set) is logged and counted, and the rejected content is not sent again:
 *   the next response goes out only when the content changes;
 * - until the secret exists the stream just waits: no empty response is ever sent.
 */
import { type DiscoveryRequest__Output, SECRET_TYPE_URL } from '../envoy/protos.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { SdsMetrics } from './metrics.js';
import type { SecretKind } from './resource-names.js';
import type { SecretCatalog, SecretSubscriber, Subscription } from './secret-catalog.js';
import { type EncodedSecret, responseWithNonce } from './secret-encoding.js';

/** Where a stream's output goes: the gRPC call, seen narrowly. */
export interface StreamSink {
  send(response: Buffer): void;
  /** Ends the stream with the error's gRPC status and message. */
  fail(error: MeshidError): void;
}

export interface StreamContext {
  readonly catalog: SecretCatalog;
  readonly logger: Logger;
  readonly metrics: SdsMetrics;
}

/** Checks the parts of a request every SDS request must get right; returns the one resource name. */
export function requestedName(req: DiscoveryRequest__Output, method: string): string {
  if (req.type_url && req.type_url !== SECRET_TYPE_URL) {
    throw new MeshidError('sds_wrong_type_url', `${method}: this server serves ${SECRET_TYPE_URL}, not ${req.type_url}`);
  }
  const names = req.resource_names ?? [];
  if (names.length !== 1) {
    throw new MeshidError('sds_resource_count',
      `${method}: exactly one secret name per ${method === 'FetchSecrets' ? 'request' : 'stream'} (got ${names.length}); Envoy opens one stream per secret`);
  }
  return names[0]!;
}

export class SecretStream implements SecretSubscriber {
  private subscription: Subscription | undefined;
  private name: string | undefined;
  private started = false;
  private closed = false;
  private nodeId: string | undefined;
  private nonceCounter = 0;
  /** The largest EncodedSecret.seq this stream was sent with its shared nonce. */
  private sharedSeq = 0;
  private sentNonce: string | undefined;
  private sentVersion: string | undefined;
  private rejectedVersion: string | undefined;

  constructor(
    private readonly ctx: StreamContext,
    private readonly sink: StreamSink,
  ) {}

  handle(req: DiscoveryRequest__Output): void {
    if (this.closed) return;
    try {
      if (!this.started) {
        this.started = true;
        this.nodeId = req.node?.id || undefined;
        this.subscribeTo(requestedName(req, 'StreamSecrets'));
        return;
      }
      this.handleFollowUp(req);
    } catch (e) {
      // Never let a bug escape into grpc-js's event handlers (that would end the process).
      this.fail(e instanceof MeshidError ? e : new MeshidError('sds_internal', `internal error: ${errorMessage(e)}`));
    }
  }

  deliver(secret: EncodedSecret): void {
    if (this.closed) return;
    if (secret.version === this.sentVersion || secret.version === this.rejectedVersion) return;
    this.send(secret);
  }

  fail(error: MeshidError): void {
    if (this.closed) return;
    this.ctx.logger.warn({ node: this.nodeId, resource: this.name, code: error.code, err: error.message }, 'SDS stream refused');
    this.ctx.metrics.requestRejected(error.code);
    this.close();
    this.sink.fail(error);
  }

  /** Ends the stream with a status without treating it as a refusal (server shutdown). */
  terminate(error: MeshidError): void {
    if (this.closed) return;
    this.close();
    this.sink.fail(error);
  }

  /** Releases everything the stream holds; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscription?.release();
    this.subscription = undefined;
  }

  private handleFollowUp(req: DiscoveryRequest__Output): void {
    const names = req.resource_names ?? [];
    if (req.type_url && req.type_url !== SECRET_TYPE_URL) requestedName(req, 'StreamSecrets'); // throws the type error
    // Envoy keeps one name per SDS stream; a changed name is a new subscription on the same stream.
    const renamed = names.length > 0 && (names.length !== 1 || names[0] !== this.name);
    if (this.sentNonce === undefined || (req.response_nonce ?? '') !== this.sentNonce) {
      // Nothing sent yet (we are waiting for the secret), or an answer to an older response.
      if (renamed) this.subscribeTo(requestedName(req, 'StreamSecrets'));
      else this.ctx.logger.debug({ node: this.nodeId, resource: this.name, nonce: req.response_nonce }, 'stale SDS request ignored');
      return;
    }
    const kind = this.subscription!.kind;
    if (req.error_detail) this.onNack(req, kind);
    else {
      this.ctx.metrics.ackReceived(kind);
      this.ctx.logger.debug({ node: this.nodeId, resource: this.name, version: req.version_info }, 'SDS ACK');
    }
    if (renamed) this.subscribeTo(requestedName(req, 'StreamSecrets'));
  }

  private onNack(req: DiscoveryRequest__Output, kind: SecretKind): void {
    this.rejectedVersion = this.sentVersion;
    this.ctx.metrics.nackReceived(kind);
    this.ctx.logger.warn(
      {
        node: this.nodeId,
        resource: this.name,
        rejectedVersion: this.sentVersion,
        keptVersion: req.version_info,
        envoyError: req.error_detail?.message ?? '',
        envoyCode: req.error_detail?.code ?? 0,
      },
      'Envoy rejected a secret (NACK); it is not sent again until its content changes',
    );
  }

  private subscribeTo(name: string): void {
    this.subscription?.release();
    this.subscription = undefined;
    this.name = name;
    this.sentNonce = this.sentVersion = this.rejectedVersion = undefined;
    this.subscription = this.ctx.catalog.subscribe(name, this);
    const current = this.subscription.current();
    this.ctx.logger.debug({ node: this.nodeId, resource: name, waiting: !current }, 'SDS stream subscribed');
    if (current) this.send(current);
  }

  private send(secret: EncodedSecret): void {
    // Encodings are numbered in order, so a seq above every one this stream had is a nonce it has
    // never been sent: the shared bytes go out as they are. Otherwise (the same encoding again,
    // after a rename back) the stream's own counter keeps its nonces unique.
    let response = secret.response;
    let nonce = secret.nonce;
    if (secret.seq > this.sharedSeq) this.sharedSeq = secret.seq;
    else {
      nonce = `${secret.nonce}.${(++this.nonceCounter).toString(36)}`;
      response = responseWithNonce(secret, nonce);
    }
    this.sentNonce = nonce;
    this.sentVersion = secret.version;
    this.sink.send(response);
    this.ctx.metrics.responseSent(this.subscription!.kind);
  }
}

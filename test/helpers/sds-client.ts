/**
 * An SDS client that behaves like Envoy's (without ADS), on the official protos: the tests' (and
 * the SDS benchmark's) stand-in for Envoy:
 *
 * - one StreamSecrets stream per secret name; the node goes on the first message of each stream only
 *   (set_node_on_first_message_only);
 * - every response is checked as Envoy checks it (type URL, exactly one resource, the name asked
 *   for, a Secret that decodes and holds inline certificate or CA bytes) and ACKed with its version
 *   and nonce, or NACKed with error_detail and the previous version, keeping the previous secret;
 * - a caller can make it reject content (a NACK on demand);
 * - when a stream breaks it reconnects and resubscribes with the last version it accepted.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { type DiscoveryRequest, type DiscoveryResponse__Output, envoyProtos, SECRET_TYPE_URL } from '../../src/envoy/protos.js';
import { checkSecretResponse, type DecodedSecret, NACK_CODE, sdsClient } from '../../src/sds/client.js';

export type { DecodedSecret };

export interface ReceivedSecret {
  readonly version: string;
  readonly nonce: string;
  readonly secret: DecodedSecret;
  /** performance.timeOrigin + performance.now() when the response was processed (comparable across processes). */
  readonly receivedAt: number;
}

export interface Nack {
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
}

export interface SdsClientOptions {
  readonly socketPath: string;
  readonly node?: { readonly id: string; readonly cluster: string };
  /** Return an error message to NACK the secret (Envoy then keeps its previous one). */
  readonly reject?: (secret: DecodedSecret, version: string) => string | undefined;
  /** Reconnect a broken stream (default true) after this delay (default 20 ms; Envoy: 0.5 s to 30 s, jittered). */
  readonly reconnect?: boolean;
  readonly reconnectDelayMs?: number;
  /** Skip decoding the Secret beyond its name (benchmarks with many streams); the envelope is still checked. */
  readonly shallow?: boolean;
}

/** Default bound on waiting for a secret or a stream end: only a bound on a hang, generous for a loaded machine. */
const WAIT_MS = 20_000;

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class SdsClient {
  readonly client: grpc.Client;
  private readonly watches = new Set<SecretWatch>();

  constructor(readonly options: SdsClientOptions) {
    // Each SdsClient is its own Envoy: its own connection.
    this.client = sdsClient(options.socketPath, { 'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 200 });
  }

  /** Opens a stream for one secret name. */
  subscribe(name: string): SecretWatch {
    const w = new SecretWatch(this, name);
    this.watches.add(w);
    return w;
  }

  /** FetchSecrets for one name. */
  fetch(name: string, deadlineMs = 5000, request: DiscoveryRequest = {}): Promise<{ version: string; secret: DecodedSecret }> {
    const method = envoyProtos().sdsService.FetchSecrets;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        { resource_names: [name], type_url: SECRET_TYPE_URL, ...(this.options.node ? { node: { ...this.options.node } } : {}), ...request },
        { deadline: Date.now() + deadlineMs },
        (err, res) => {
          if (err) return reject(err);
          try {
            resolve(checkSecretResponse(res!, name, false));
          } catch (e) {
            reject(e);
          }
        },
      );
    });
  }

  /** Opens a raw stream (for tests that speak the protocol by hand). */
  rawStream(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output> {
    const method = envoyProtos().sdsService.StreamSecrets;
    return this.client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
  }

  /** Calls another method of the service (DeltaSecrets) and returns its final status. */
  deltaStatus(): Promise<grpc.StatusObject> {
    const method = envoyProtos().sdsService.DeltaSecrets;
    const call = this.client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    return new Promise((resolve) => {
      call.on('status', resolve);
      call.on('error', () => {});
      call.on('data', () => {});
      call.write({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['default'] });
    });
  }

  forget(w: SecretWatch): void {
    this.watches.delete(w);
  }

  close(): void {
    for (const w of [...this.watches]) w.close();
    this.client.close();
  }
}

type Waiter = { pred: (s: ReceivedSecret) => boolean; resolve: (s: ReceivedSecret) => void };

export class SecretWatch {
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output> | undefined;
  private current: ReceivedSecret | undefined;
  private waiters: Waiter[] = [];
  private readonly updateListeners = new Set<(s: ReceivedSecret) => void>();
  private statusWaiters: Array<(s: grpc.StatusObject) => void> = [];
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Responses accepted (ACKed). */
  accepted = 0;
  readonly nacks: Nack[] = [];
  /** Responses that failed Envoy's checks (also NACKed). */
  readonly protocolErrors: string[] = [];
  /** Final statuses of streams that ended. */
  readonly statuses: grpc.StatusObject[] = [];
  streamsOpened = 0;

  constructor(
    private readonly owner: SdsClient,
    readonly name: string,
  ) {
    this.open();
  }

  latest(): ReceivedSecret | undefined {
    return this.current;
  }

  /** Runs listener on every accepted secret (after it is ACKed); returns an unsubscribe function. */
  onUpdate(listener: (s: ReceivedSecret) => void): () => void {
    this.updateListeners.add(listener);
    return () => void this.updateListeners.delete(listener);
  }

  /** The next secret accepted after this call. */
  nextUpdate(timeoutMs = WAIT_MS): Promise<ReceivedSecret> {
    return this.waitFor(() => true, timeoutMs, false);
  }

  /** The latest accepted secret once it satisfies pred (at once if it already does). */
  waitFor(pred: (s: ReceivedSecret) => boolean, timeoutMs = WAIT_MS, checkCurrent = true): Promise<ReceivedSecret> {
    if (checkCurrent && this.current && pred(this.current)) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no matching secret within ${timeoutMs} ms (latest version ${this.current?.version ?? 'none'})`));
      }, timeoutMs);
      const waiter: Waiter = {
        pred,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves with the status of the next stream end. */
  nextStatus(timeoutMs = WAIT_MS): Promise<grpc.StatusObject> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: stream did not end within ${timeoutMs} ms`)), timeoutMs);
      this.statusWaiters.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }


  /** Cancels the current stream, as a broken connection would; the watch reconnects. */
  breakStream(): void {
    this.call?.cancel();
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.call?.cancel();
    this.call = undefined;
    this.owner.forget(this);
  }

  private open(): void {
    const call = this.owner.rawStream();
    this.call = call;
    this.streamsOpened++;
    let ended = false;
    const onEnd = (status: grpc.StatusObject) => {
      if (ended) return;
      ended = true;
      this.statuses.push(status);
      for (const w of this.statusWaiters.splice(0)) w(status);
      if (this.call === call) this.call = undefined;
      if (!this.closed && this.owner.options.reconnect !== false) {
        this.reconnectTimer = setTimeout(() => {
          if (!this.closed) this.open();
        }, this.owner.options.reconnectDelayMs ?? 20);
      }
    };
    call.on('data', (res: DiscoveryResponse__Output) => this.onResponse(call, res));
    call.on('status', onEnd);
    // The status event carries the outcome; 'error' only duplicates it for non-OK statuses.
    call.on('error', () => {});
    const node = this.owner.options.node;
    call.write({
      ...(node ? { node: { id: node.id, cluster: node.cluster } } : {}),
      // After a reconnect Envoy resubscribes with the version it holds, and no nonce.
      version_info: this.current?.version ?? '',
      resource_names: [this.name],
      type_url: SECRET_TYPE_URL,
    });
  }

  private onResponse(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output>, res: DiscoveryResponse__Output): void {
    const receivedAt = nowMs();
    const nonce = res.nonce ?? '';
    let checked: { version: string; secret: DecodedSecret };
    try {
      if (!nonce) throw new Error('response without nonce');
      checked = checkSecretResponse(res, this.name, this.owner.options.shallow === true);
    } catch (e) {
      const message = (e as Error).message;
      this.protocolErrors.push(message);
      this.nack(call, nonce, res.version_info ?? '', message);
      return;
    }
    const rejection = this.owner.options.reject?.(checked.secret, checked.version);
    if (rejection !== undefined) {
      this.nack(call, nonce, checked.version, rejection);
      return;
    }
    const received: ReceivedSecret = { version: checked.version, nonce, secret: checked.secret, receivedAt };
    this.current = received;
    this.accepted++;
    call.write({ version_info: checked.version, response_nonce: nonce, resource_names: [this.name], type_url: SECRET_TYPE_URL });
    for (const l of this.updateListeners) l(received);
    const ready = this.waiters.filter((w) => w.pred(received));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(received);
  }

  private nack(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output>, nonce: string, version: string, message: string): void {
    this.nacks.push({ version, nonce, message });
    call.write({
      version_info: this.current?.version ?? '',
      response_nonce: nonce,
      resource_names: [this.name],
      type_url: SECRET_TYPE_URL,
      error_detail: { code: NACK_CODE, message },
    });
  }
}

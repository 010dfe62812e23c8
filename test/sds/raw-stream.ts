/** A hand-driven StreamSecrets stream, for tests that need to send exactly what they choose (stale nonces, odd versions). */
import type * as grpc from '@grpc/grpc-js';
import { type DiscoveryRequest, type DiscoveryResponse__Output, envoyProtos, type Secret__Output } from '../../src/envoy/protos.js';
import type { SdsClient } from '../helpers/sds-client.js';

export interface RawResponse {
  readonly version: string;
  readonly nonce: string;
  readonly names: string[];
}

export class RawStream {
  private readonly call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output>;
  private readonly queue: RawResponse[] = [];
  private waiter: (() => void) | undefined;
  status: grpc.StatusObject | undefined;
  received = 0;

  constructor(client: SdsClient) {
    this.call = client.rawStream();
    this.call.on('data', (res: DiscoveryResponse__Output) => {
      const { Secret } = envoyProtos();
      this.received++;
      this.queue.push({
        version: res.version_info ?? '',
        nonce: res.nonce ?? '',
        names: (res.resources ?? []).map((r) => (Secret.decode(r.value ?? Buffer.alloc(0)) as Secret__Output).name ?? ''),
      });
      this.waiter?.();
    });
    this.call.on('status', (s) => {
      this.status = s;
      this.waiter?.();
    });
    this.call.on('error', () => {});
  }

  send(req: DiscoveryRequest): void {
    this.call.write(req);
  }

  /** The next response, or undefined if none arrives within ms. */
  async next(ms = 3000): Promise<RawResponse | undefined> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0 && !this.status && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.queue.shift();
  }

  /** Half-closes: the client will send nothing more. */
  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }
}

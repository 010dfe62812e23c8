/**
 * The demo workloads' TLS material, fetched from their agent over SDS: one StreamSecrets stream
 * for the "default" certificate and key and one for the "ROOTCA" trusted CAs, each response ACKed
 * and applied; a broken stream is reopened. Written for `meshid dev --demo` only: the tests drive
 * the SDS server with a stricter, Envoy-like client (test/helpers/sds-client.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../config/defaults.js';
import { type DiscoveryRequest, type DiscoveryResponse__Output, envoyProtos, SECRET_TYPE_URL, type Secret__Output } from '../envoy/protos.js';
import { parseCertificate } from '../identity/certificate.js';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** What the demo's server and client read: the current material, and a call on every change. */
export interface TlsSource {
  current(): TlsMaterial;
  onChange(listener: (m: TlsMaterial) => void): void;
}

/** The peer's SPIFFE ID: the one URI SAN of its leaf, read from the parsed extension. */
export function peerSpiffeId(raw: Buffer | undefined): string | undefined {
  if (!raw?.length) return undefined;
  const uris = parseCertificate(raw).sans.filter((n) => n.type === 'uri');
  return uris.length === 1 ? uris[0]!.value : undefined;
}

type Stream = grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output>;

const REOPEN_DELAY_MS = 500;

export class SdsTls implements TlsSource {
  private readonly client: grpc.Client;
  private readonly streams = new Set<Stream>();
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private readonly secrets = new Map<string, Secret__Output>();
  private material: TlsMaterial | undefined;
  private readyWaiters: Array<() => void> = [];
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    socketPath: string,
    private readonly node: { readonly id: string; readonly cluster: string },
  ) {
    this.client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
    for (const name of [SDS_WORKLOAD_SECRET, SDS_ROOT_SECRET]) this.open(name);
  }

  /** Resolves once both secrets have arrived. */
  ready(timeoutMs = 30_000): Promise<void> {
    if (this.material) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TLS material from SDS within ${timeoutMs} ms`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error('no TLS material yet');
    return this.material;
  }

  onChange(listener: (m: TlsMaterial) => void): void {
    this.listeners.add(listener);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.streams) s.cancel();
    this.client.close();
  }

  private open(name: string): void {
    const method = envoyProtos().sdsService.StreamSecrets;
    const call: Stream = this.client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    this.streams.add(call);
    call.on('data', (res) => {
      const secret = envoyProtos().Secret.toObject(envoyProtos().Secret.decode(res.resources?.[0]?.value ?? Buffer.alloc(0)), { bytes: Buffer }) as Secret__Output;
      this.secrets.set(name, secret);
      call.write({ version_info: res.version_info, response_nonce: res.nonce, resource_names: [name], type_url: SECRET_TYPE_URL });
      this.apply();
    });
    call.on('error', () => {}); // the status event says how the stream ended
    call.on('status', () => {
      this.streams.delete(call);
      if (this.closed) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.closed) this.open(name);
      }, REOPEN_DELAY_MS);
      this.timers.add(timer);
    });
    call.write({ node: { ...this.node }, resource_names: [name], type_url: SECRET_TYPE_URL });
  }

  private apply(): void {
    const tlsCert = this.secrets.get(SDS_WORKLOAD_SECRET)?.tls_certificate;
    const ca = this.secrets.get(SDS_ROOT_SECRET)?.validation_context?.trusted_ca?.inline_bytes;
    const key = tlsCert?.private_key?.inline_bytes;
    const cert = tlsCert?.certificate_chain?.inline_bytes;
    if (!key || !cert || !ca) return;
    this.material = { key: key.toString(), cert: cert.toString(), ca: ca.toString() };
    for (const w of this.readyWaiters.splice(0)) w();
    for (const l of this.listeners) l(this.material);
  }
}

/**
 * A lean Envoy-side load generator for the SDS benchmark: N StreamSecrets streams spoken directly
 * over node:http2 with gRPC framing and the official protos (no grpc-js client stack), so that on a
 * 2-core machine the clients cost less than the server they measure, as Envoy's C++ client does.
 * It checks what Envoy checks (type URL, exactly one resource, the requested name, a Secret that
 * decodes, a version and a nonce) and ACKs every response with its version and nonce; the time a
 * response arrived is taken before any of that (see handleReceived).
 * The behaviour tests use src/sds/client.ts (grpc-js, NACKs, reconnects) instead.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { envoyProtos, SDS_SERVICE, SECRET_TYPE_URL } from '../src/envoy/protos.js';
import { nowMs } from '../test/helpers/sds-client.js';

export interface SdsFleet {
  readonly size: number;
  /** Runs listener for every response accepted on any stream. */
  onUpdate(listener: (version: string, receivedAt: number) => void): () => void;
  /** Problems seen (a response Envoy would reject, a stream that ended); the benchmark fails on any. */
  readonly errors: string[];
  close(): void;
}

const PATH = `/${SDS_SERVICE}/StreamSecrets`;
const ENVOY_WINDOW = 256 * 1024 * 1024;

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0; // not compressed
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export async function openLeanFleet(socketPath: string, streams: number, connections: number, name = 'default'): Promise<SdsFleet> {
  const { DiscoveryRequest, DiscoveryResponse, Secret } = envoyProtos();
  const listeners = new Set<(version: string, at: number) => void>();
  const errors: string[] = [];
  let closing = false;
  // Envoy's HTTP/2 defaults: 256 MiB stream and connection windows. With node's 64 KiB connection
  // window a push of 100 responses of 3 KB on one connection would wait for several WINDOW_UPDATE
  // round trips, which measures the client's flow-control settings, not the server.
  const sessions = Array.from({ length: Math.min(streams, connections) }, () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(socketPath), settings: { initialWindowSize: ENVOY_WINDOW } });
    session.on('connect', () => session.setLocalWindowSize(ENVOY_WINDOW));
    return session.on('error', (e) => errors.push(`session: ${e.message}`));
  });
  let firstAnswers = 0;
  let batchDone: () => void = () => {};
  let batchTarget = 0;
  // Every stream gets the same bytes on a push, so a response identical to the last one checked
  // passes the same checks: it is decoded once, and its ACK (the same for every stream) encoded once.
  let checked: { bytes: Buffer; version: string; ack: Buffer } | undefined;
  const check = (bytes: Buffer): { version: string; ack: Buffer } | string => {
    if (checked?.bytes.equals(bytes)) return checked;
    const res = DiscoveryResponse.decode(bytes) as unknown as { version_info: string; nonce: string; type_url: string; resources: Array<{ type_url: string; value: Uint8Array }> };
    const secretName = res.resources.length === 1 && res.resources[0]!.type_url === SECRET_TYPE_URL ? (Secret.decode(res.resources[0]!.value) as unknown as { name: string }).name : undefined;
    if (res.type_url !== SECRET_TYPE_URL || secretName !== name || !res.version_info || !res.nonce) {
      return `response Envoy would reject (type ${res.type_url}, ${res.resources.length} resources, name ${secretName})`;
    }
    const ack = grpcFrame(DiscoveryRequest.encode({ version_info: res.version_info, response_nonce: res.nonce, resource_names: [name], type_url: SECRET_TYPE_URL }).finish());
    checked = { bytes: Buffer.from(bytes), version: res.version_info, ack };
    return checked;
  };
  // Messages are time-stamped as their bytes arrive and handled (checked, ACKed, reported) once the
  // reads of this event-loop turn are done: otherwise handling stream 1's response would delay the
  // time stamp of stream 2's, which arrived in the same read, and the client's own work would be
  // measured as the server's delivery time. (Envoy too ACKs only after applying the secret.)
  const received: Array<{ stream: http2.ClientHttp2Stream; i: number; bytes: Buffer; at: number; onFirst: () => void }> = [];
  const handleReceived = () => {
    for (const { stream, i, bytes, at, onFirst } of received.splice(0)) {
      const ok = check(bytes);
      if (typeof ok === 'string') {
        errors.push(`stream ${i}: ${ok}`);
        continue;
      }
      stream.write(ok.ack);
      onFirst();
      for (const l of listeners) l(ok.version, at);
    }
  };

  const openStream = (i: number) => {
    const stream = sessions[i % sessions.length]!.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
    let pending: Buffer = Buffer.alloc(0);
    let answered = false;
    const onFirst = () => {
      if (answered) return;
      answered = true;
      if (++firstAnswers === batchTarget) batchDone();
    };
    const onMessage = (bytes: Buffer, at: number) => {
      if (received.push({ stream, i, bytes, at, onFirst }) === 1) setImmediate(handleReceived);
    };
    stream.on('data', (chunk: Buffer) => {
      const at = nowMs();
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1);
        if (pending.length < 5 + length) break;
        if (pending[0] !== 0) errors.push(`stream ${i}: compressed message`);
        else onMessage(pending.subarray(5, 5 + length), at);
        pending = pending.subarray(5 + length);
      }
    });
    stream.on('trailers', (t) => {
      if (!closing) errors.push(`stream ${i}: ended with grpc-status ${t['grpc-status']} ${t['grpc-message'] ?? ''}`);
    });
    stream.on('error', (e) => {
      if (!closing) errors.push(`stream ${i}: ${e.message}`);
    });
    // Envoy's first message: node, the name, no version or nonce.
    stream.write(grpcFrame(DiscoveryRequest.encode({ node: { id: `sidecar~10.0.0.${i % 250}~bench.default~default.svc.cluster.local`, cluster: 'bench' }, resource_names: [name], type_url: SECRET_TYPE_URL }).finish()));
  };
  // Streams open in batches of 100, each batch answered before the next, as Envoys arriving over
  // time would (1,000 at once would measure a burst's peak memory, not idle streams).
  for (let i = 0; i < streams; i += 100) {
    batchTarget = Math.min(streams, i + 100);
    const batch = new Promise<void>((resolve) => (batchDone = resolve));
    for (let j = i; j < batchTarget; j++) openStream(j);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${firstAnswers}/${batchTarget} streams answered within 30 s: ${errors.slice(0, 3).join('; ')}`)), 30_000);
    });
    await Promise.race([batch, timeout]).finally(() => clearTimeout(timer));
  }
  return {
    size: streams,
    errors,
    onUpdate(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    close() {
      closing = true;
      for (const s of sessions) s.destroy();
    },
  };
}

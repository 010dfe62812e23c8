/** A grpc-js ext_authz client using Envoy's official protos (the standard codec, not meshid's). */
import * as grpc from '@grpc/grpc-js';
import { type CheckRequest, type CheckResponse__Output, envoyProtos } from '../../../src/envoy/protos.js';
import type { Logger } from '../../../src/observability/logger.js';
import { captureLogs, type LogLine } from '../../helpers/logs.js';
export type { LogLine };


export interface AuthzClient {
  check(request: CheckRequest): Promise<CheckResponse__Output>;
  /** Sends raw bytes as the request message. */
  checkRaw(bytes: Buffer): Promise<CheckResponse__Output>;
  close(): void;
}

export function authzClient(address: string): AuthzClient {
  const def = envoyProtos().authzService.Check;
  // A private subchannel pool: close() then really closes the connection, so the server's
  // graceful shutdown does not wait for grpc-js's shared pool to let it go.
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const call = <T>(arg: T, serialize: (v: T) => Buffer) =>
    new Promise<CheckResponse__Output>((resolve, reject) => {
      client.makeUnaryRequest(def.path, serialize, (b: Buffer) => def.responseDeserialize(b), arg, { deadline: Date.now() + 10_000 }, (err, value) => {
        if (err) reject(err);
        else resolve(value!);
      });
    });
  return {
    check: (request) => call(request, (v) => def.requestSerialize(v)),
    checkRaw: (bytes) => call(bytes, (v) => v),
    close: () => client.close(),
  };
}

/** The dynamic_metadata Struct as a flat object (protobufjs' bundled struct.proto names Value's fields in camelCase). */
export function metadataOf(r: CheckResponse__Output): Record<string, string | number | boolean | undefined> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const [k, v] of Object.entries(r.dynamic_metadata?.fields ?? {})) out[k] = v.stringValue ?? v.numberValue ?? v.boolValue;
  return out;
}

export function capturingLogger(): { logger: Logger; lines: () => LogLine[] } {
  const { logger, lines } = captureLogs();
  return { logger, lines: () => lines };
}

/** A CheckRequest object (proto field names) for an HTTP request. */
export function checkRequest(o: {
  principal?: string;
  method?: string;
  path?: string;
  host?: string;
  certificate?: string;
  headers?: Record<string, string>;
  sourceIp?: string;
  destinationPort?: number;
}): CheckRequest {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: o.sourceIp ?? '10.0.0.7', port_value: 40000 } },
        ...(o.principal !== undefined ? { principal: o.principal } : {}),
        ...(o.certificate !== undefined ? { certificate: o.certificate } : {}),
      },
      destination: { address: { socket_address: { address: '10.0.0.8', port_value: o.destinationPort ?? 8080 } } },
      request: {
        http: {
          id: 'req-1',
          method: o.method ?? 'GET',
          path: o.path ?? '/api/v1/orders',
          host: o.host ?? 'orders.shop.svc.cluster.local',
          headers: { 'x-tenant': 'globex', ...(o.headers ?? {}) },
        },
      },
      tls_session: { sni: 'orders.shop.svc.cluster.local' },
    },
  };
}

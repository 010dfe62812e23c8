/**
 * The SPIFFE Workload API from proto/workload.proto (compiled into the build-time descriptor): the
 * service definition (served by the agent, called by the Node client library) and the message
 * shapes as they look in JS.
 */
import type * as grpc from '@grpc/grpc-js';
import { typedServiceDefinition } from '../lib/proto-services.js';

/** The standard declares the service without a package: paths are /SpiffeWorkloadAPI/<Method>. */
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';

/** The metadata every Workload API call must carry (the standard's guard against SSRF-style proxying). */
export const SECURITY_HEADER = 'workload.spiffe.io';
export const SECURITY_HEADER_VALUE = 'true';

export interface X509Svid {
  spiffe_id: string;
  /** DER certificates concatenated, leaf first. */
  x509_svid: Uint8Array;
  /** DER PKCS#8. */
  x509_svid_key: Uint8Array;
  /** DER roots concatenated. */
  bundle: Uint8Array;
  hint?: string;
}

export interface X509SvidResponse {
  svids?: X509Svid[];
  crl?: Uint8Array[];
  federated_bundles?: Record<string, Uint8Array>;
}

export interface X509BundlesResponse {
  crl?: Uint8Array[];
  bundles?: Record<string, Uint8Array>;
}

export interface JwtSvidRequest {
  audience?: string[];
  spiffe_id?: string;
}

export interface JwtSvidResponse {
  svids?: Array<{ spiffe_id: string; svid: string; hint?: string }>;
}

export interface JwtBundlesResponse {
  /** JWKS JSON per trust domain ID. */
  bundles?: Record<string, Uint8Array>;
}

export interface ValidateJwtSvidRequest {
  audience?: string;
  svid?: string;
}

/** google.protobuf.Struct as protobufjs reads and writes it. */
export interface StructMessage {
  fields?: Record<string, StructValue>;
}
export type StructValue =
  | { nullValue: 'NULL_VALUE' | 0 }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: StructMessage }
  | { listValue: { values?: StructValue[] } };

export interface ValidateJwtSvidResponse {
  spiffe_id?: string;
  claims?: StructMessage;
}

export type Empty = object;

export interface WorkloadApiDefinition extends grpc.ServiceDefinition {
  FetchX509SVID: grpc.MethodDefinition<Empty, X509SvidResponse>;
  FetchX509Bundles: grpc.MethodDefinition<Empty, X509BundlesResponse>;
  FetchJWTSVID: grpc.MethodDefinition<JwtSvidRequest, JwtSvidResponse>;
  FetchJWTBundles: grpc.MethodDefinition<Empty, JwtBundlesResponse>;
  ValidateJWTSVID: grpc.MethodDefinition<ValidateJwtSvidRequest, ValidateJwtSvidResponse>;
}

const METHODS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;

let service: WorkloadApiDefinition | undefined;

export function workloadApiDefinition(): WorkloadApiDefinition {
  service ??= typedServiceDefinition<WorkloadApiDefinition>(WORKLOAD_API_SERVICE, METHODS);
  return service;
}

/** A JSON value as google.protobuf.Struct's Value. */
export function structValue(v: unknown): StructValue {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(structValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

export function toStruct(o: Record<string, unknown>): StructMessage {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, structValue(v)])) };
}

/** google.protobuf.Struct back to a plain JSON object. */
export function fromStruct(s: StructMessage | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s?.fields ?? {}).map(([k, v]) => [k, fromStructValue(v)]));
}

function fromStructValue(v: StructValue): unknown {
  if ('numberValue' in v) return v.numberValue;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('structValue' in v) return fromStruct(v.structValue);
  if ('listValue' in v) return (v.listValue.values ?? []).map(fromStructValue);
  return null;
}

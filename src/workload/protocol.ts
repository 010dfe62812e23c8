/**
 * The SPIFFE Workload API from proto/workload.proto (compiled into the build-time descriptor): the
 * service definition (served by the agent, called by the Node client library) and the message
 * message types generated from the same .proto at build time.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Struct, Struct__Output } from '../generated/google/protobuf/Struct.js';
import type { Value, Value__Output } from '../generated/google/protobuf/Value.js';
import type { JWTBundlesRequest, JWTBundlesRequest__Output } from '../generated/JWTBundlesRequest.js';
import type { JWTBundlesResponse, JWTBundlesResponse__Output } from '../generated/JWTBundlesResponse.js';
import type { JWTSVIDRequest, JWTSVIDRequest__Output } from '../generated/JWTSVIDRequest.js';
import type { JWTSVIDResponse, JWTSVIDResponse__Output } from '../generated/JWTSVIDResponse.js';
import type { ValidateJWTSVIDRequest, ValidateJWTSVIDRequest__Output } from '../generated/ValidateJWTSVIDRequest.js';
import type { ValidateJWTSVIDResponse, ValidateJWTSVIDResponse__Output } from '../generated/ValidateJWTSVIDResponse.js';
import type { X509BundlesRequest, X509BundlesRequest__Output } from '../generated/X509BundlesRequest.js';
import type { X509BundlesResponse, X509BundlesResponse__Output } from '../generated/X509BundlesResponse.js';
import type { X509SVIDRequest, X509SVIDRequest__Output } from '../generated/X509SVIDRequest.js';
import type { X509SVIDResponse, X509SVIDResponse__Output } from '../generated/X509SVIDResponse.js';
import { type TypedMethod, typedServiceDefinition } from '../lib/proto-services.js';

export type {
  JWTBundlesResponse,
  JWTBundlesResponse__Output,
  JWTSVIDRequest__Output,
  JWTSVIDResponse,
  JWTSVIDResponse__Output,
  ValidateJWTSVIDRequest__Output,
  ValidateJWTSVIDResponse,
  ValidateJWTSVIDResponse__Output,
  X509BundlesResponse,
  X509BundlesResponse__Output,
  X509SVIDResponse,
  X509SVIDResponse__Output,
};

/** The standard declares the service without a package: paths are /SpiffeWorkloadAPI/<Method>. */
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';

/** The metadata every Workload API call must carry (the standard's guard against SSRF-style proxying). */
export const SECURITY_HEADER = 'workload.spiffe.io';
export const SECURITY_HEADER_VALUE = 'true';

/** The streams' requests carry nothing the agent reads. */
export type Empty = object;

type Method<Req, Res, ReqOut, ResOut> = TypedMethod<Req, Res, ReqOut, ResOut>;

export interface WorkloadApiDefinition extends grpc.ServiceDefinition {
  FetchX509SVID: Method<X509SVIDRequest, X509SVIDResponse, X509SVIDRequest__Output, X509SVIDResponse__Output>;
  FetchX509Bundles: Method<X509BundlesRequest, X509BundlesResponse, X509BundlesRequest__Output, X509BundlesResponse__Output>;
  FetchJWTSVID: Method<JWTSVIDRequest, JWTSVIDResponse, JWTSVIDRequest__Output, JWTSVIDResponse__Output>;
  FetchJWTBundles: Method<JWTBundlesRequest, JWTBundlesResponse, JWTBundlesRequest__Output, JWTBundlesResponse__Output>;
  ValidateJWTSVID: Method<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse, ValidateJWTSVIDRequest__Output, ValidateJWTSVIDResponse__Output>;
}

const METHODS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;

let service: WorkloadApiDefinition | undefined;

export function workloadApiDefinition(): WorkloadApiDefinition {
  service ??= typedServiceDefinition<WorkloadApiDefinition>(WORKLOAD_API_SERVICE, METHODS);
  return service;
}

/** A JSON value as google.protobuf.Struct's Value. */
export function structValue(v: unknown): Value {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(structValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

export function toStruct(o: Record<string, unknown>): Struct {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, structValue(v)])) };
}

/** google.protobuf.Struct back to a plain JSON object. */
export function fromStruct(s: Struct__Output | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s?.fields ?? {}).map(([k, v]) => [k, fromStructValue(v)]));
}

function fromStructValue(v: Value__Output): unknown {
  switch (v.kind) {
    case 'numberValue': return v.numberValue;
    case 'stringValue': return v.stringValue;
    case 'boolValue': return v.boolValue;
    case 'structValue': return fromStruct(v.structValue);
    case 'listValue': return (v.listValue?.values ?? []).map(fromStructValue);
    default: return null;
  }
}

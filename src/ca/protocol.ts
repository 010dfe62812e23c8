/**
 * The CA wire protocol: istio.v1.auth.IstioCertificateService from proto/istio_ca.proto, loaded
 * once (google/protobuf/struct.proto is built into protobufjs).
 */
import type * as grpc from '@grpc/grpc-js';
import { packagePath } from '../lib/package-path.js';
import { loadProtoRoot, serviceDefinition } from '../lib/proto-services.js';

export const CA_SERVICE = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE}/CreateCertificate`;

/** As the messages look in JS: .proto field names, int64 as a decimal string on receipt. */
export interface IstioCertificateRequest {
  csr?: string;
  /** Seconds; int64 arrives as a string and may be sent as a number. */
  validity_duration?: string | number;
  metadata?: unknown;
}

export interface IstioCertificateResponse {
  cert_chain?: string[];
}

export type CreateCertificateMethod = grpc.MethodDefinition<IstioCertificateRequest, IstioCertificateResponse>;

export interface CaServiceDefinition extends grpc.ServiceDefinition {
  CreateCertificate: CreateCertificateMethod;
}

// The compiled module sits in dist/src/ca; the proto stays at the repository root.
const PROTO_FILE = packagePath('proto', 'istio_ca.proto');

let service: CaServiceDefinition | undefined;

export function caServiceDefinition(): CaServiceDefinition {
  if (service) return service;
  const def = serviceDefinition(loadProtoRoot([PROTO_FILE], []), CA_SERVICE);
  if (!def?.CreateCertificate || def.CreateCertificate.path !== CREATE_CERTIFICATE_PATH) {
    throw new Error(`${PROTO_FILE} does not define ${CREATE_CERTIFICATE_PATH}`);
  }
  service = def as CaServiceDefinition;
  return service;
}

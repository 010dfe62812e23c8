/**
 * The CA wire protocol: istio.v1.auth.IstioCertificateService from proto/istio_ca.proto, compiled
 * into the build-time descriptor with Envoy's protos.
 */
import type * as grpc from '@grpc/grpc-js';
import type { IstioCertificateRequest, IstioCertificateRequest__Output } from '../generated/istio/v1/auth/IstioCertificateRequest.js';
import type { IstioCertificateResponse, IstioCertificateResponse__Output } from '../generated/istio/v1/auth/IstioCertificateResponse.js';
import type { ErrorKind } from '../lib/errors.js';
import { type TypedMethod, typedServiceDefinition } from '../lib/proto-services.js';

export type { IstioCertificateRequest, IstioCertificateRequest__Output, IstioCertificateResponse, IstioCertificateResponse__Output };

export const CA_SERVICE = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE}/CreateCertificate`;

/** How a caller authenticates to the CA: a bearer token (first issuance) or its current SVID over mTLS. */
export type CaAuth = { kind: 'token'; token: string } | { kind: 'mtls'; certChainPem: string; privateKeyPem: string };

/** A call to the CA that failed: in the network, in TLS, or refused by the CA. */
export type CaFailure = {
  ok: false;
  kind: ErrorKind;
  grpcCode: number;
  message: string;
  /** The CA's retry hint (the grpc-retry-pushback-ms trailer): do not retry sooner than this. */
  retryAfterMs?: number;
};

/** What one CreateCertificate call yields, failures included (the client never throws for them). */
export type CaResult =
  | { ok: true; chainPem: string[] } // leaf first, root last, one PEM per element
  | CaFailure;

/** What any other CA call yields. */
export type CaCallResult<T> = { ok: true; response: T } | CaFailure;

export type CreateCertificateMethod = TypedMethod<IstioCertificateRequest, IstioCertificateResponse, IstioCertificateRequest__Output, IstioCertificateResponse__Output>;

export interface CaServiceDefinition extends grpc.ServiceDefinition {
  CreateCertificate: CreateCertificateMethod;
}

let service: CaServiceDefinition | undefined;

export function caServiceDefinition(): CaServiceDefinition {
  service ??= typedServiceDefinition<CaServiceDefinition>(CA_SERVICE, ['CreateCertificate']);
  return service;
}

/** meshid.ca.v1.RevocationService from proto/revocation.proto (in the build-time descriptor): the CA's CRL, long-polled. */
import type * as grpc from '@grpc/grpc-js';
import type { FetchCRLRequest, FetchCRLRequest__Output } from '../generated/meshid/ca/v1/FetchCRLRequest.js';
import type { FetchCRLResponse, FetchCRLResponse__Output } from '../generated/meshid/ca/v1/FetchCRLResponse.js';
import { type TypedMethod, typedServiceDefinition } from '../lib/proto-services.js';

export type { FetchCRLRequest, FetchCRLRequest__Output, FetchCRLResponse, FetchCRLResponse__Output };

export const REVOCATION_SERVICE = 'meshid.ca.v1.RevocationService';

/** The longest a FetchCRL answer is held, whatever the caller asks (the agent's default wait is below it). */
export const MAX_CRL_WAIT_MS = 60_000;

export interface RevocationServiceDefinition extends grpc.ServiceDefinition {
  FetchCRL: TypedMethod<FetchCRLRequest, FetchCRLResponse, FetchCRLRequest__Output, FetchCRLResponse__Output>;
}

let service: RevocationServiceDefinition | undefined;

export function revocationServiceDefinition(): RevocationServiceDefinition {
  service ??= typedServiceDefinition<RevocationServiceDefinition>(REVOCATION_SERVICE, ['FetchCRL']);
  return service;
}

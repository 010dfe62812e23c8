/**
 * Envoy's official v3 API types and services, shared by the SDS and ext_authz servers, from the
 * descriptor compiled at build time (Envoy's protos come from a development dependency). One
 * protobufjs Root serves both the gRPC service definitions and direct message encoding (SDS
 * pre-encodes each Secret once per push).
 */
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { Secret__Output } from '../generated/envoy/extensions/transport_sockets/tls/v3/Secret.js';
import type { _envoy_service_auth_v3_AttributeContext_HttpRequest as AttributeContextHttpRequest } from '../generated/envoy/service/auth/v3/AttributeContext.js';
import type { CheckRequest, CheckRequest__Output } from '../generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse, CheckResponse__Output } from '../generated/envoy/service/auth/v3/CheckResponse.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryRequest.js';
import type { DeltaDiscoveryResponse, DeltaDiscoveryResponse__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryResponse.js';
import type { DiscoveryRequest, DiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DiscoveryRequest.js';
import type { DiscoveryResponse, DiscoveryResponse__Output } from '../generated/envoy/service/discovery/v3/DiscoveryResponse.js';
import { protoRoot, type TypedMethod, typedServiceDefinition } from '../lib/proto-services.js';

// The generated types of the messages meshid reads and writes (src/generated, see the README).
export type { AttributeContextHttpRequest, CheckRequest, CheckResponse__Output, DiscoveryRequest, DiscoveryRequest__Output, DiscoveryResponse__Output, Secret__Output };

type SotwMethod = TypedMethod<DiscoveryRequest, DiscoveryResponse, DiscoveryRequest__Output, DiscoveryResponse__Output>;

export interface SdsServiceDefinition extends grpc.ServiceDefinition {
  readonly StreamSecrets: SotwMethod;
  readonly FetchSecrets: SotwMethod;
  readonly DeltaSecrets: TypedMethod<DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaDiscoveryRequest__Output, DeltaDiscoveryResponse__Output>;
}

export interface AuthzServiceDefinition extends grpc.ServiceDefinition {
  readonly Check: TypedMethod<CheckRequest, CheckResponse, CheckRequest__Output, CheckResponse__Output>;
}

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

export interface EnvoyProtos {
  readonly sdsService: SdsServiceDefinition;
  readonly authzService: AuthzServiceDefinition;
  readonly Secret: protobuf.Type;
  readonly CheckRequest: protobuf.Type;
  readonly CheckResponse: protobuf.Type;
  readonly DiscoveryRequest: protobuf.Type;
  readonly DiscoveryResponse: protobuf.Type;
}

let loaded: EnvoyProtos | undefined;

export function envoyProtos(): EnvoyProtos {
  if (loaded) return loaded;
  const root = protoRoot();
  loaded = {
    sdsService: typedServiceDefinition<SdsServiceDefinition>(SDS_SERVICE, ['StreamSecrets', 'FetchSecrets', 'DeltaSecrets']),
    authzService: typedServiceDefinition<AuthzServiceDefinition>(AUTHZ_SERVICE, ['Check']),
    Secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret'),
    CheckRequest: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    CheckResponse: root.lookupType('envoy.service.auth.v3.CheckResponse'),
    DiscoveryRequest: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    DiscoveryResponse: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
  };
  return loaded;
}

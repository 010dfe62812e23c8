/**
 * Envoy's official v3 API types and services, shared by the SDS and ext_authz servers, from the
 * descriptor compiled at build time (Envoy's protos come from a development dependency). One
 * protobufjs Root serves both the gRPC service definitions and direct message encoding (SDS
 * pre-encodes each Secret once per push).
 */
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { protoRoot, serviceDefinition } from '../lib/proto-services.js';

// The generated types of the messages meshid reads and writes (proto/generated, see the README).
export type { CheckRequest } from '../../proto/generated/envoy/service/auth/v3/CheckRequest.js';
export type { _envoy_service_auth_v3_AttributeContext_HttpRequest as AttributeContextHttpRequest } from '../../proto/generated/envoy/service/auth/v3/AttributeContext.js';
export type { DiscoveryRequest, DiscoveryRequest__Output } from '../../proto/generated/envoy/service/discovery/v3/DiscoveryRequest.js';
export type { DiscoveryResponse__Output } from '../../proto/generated/envoy/service/discovery/v3/DiscoveryResponse.js';
export type { Secret__Output } from '../../proto/generated/envoy/extensions/transport_sockets/tls/v3/Secret.js';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

export interface EnvoyProtos {
  readonly sdsService: grpc.ServiceDefinition;
  readonly authzService: grpc.ServiceDefinition;
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
    sdsService: serviceDefinition(root, SDS_SERVICE),
    authzService: serviceDefinition(root, AUTHZ_SERVICE),
    Secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret'),
    CheckRequest: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    CheckResponse: root.lookupType('envoy.service.auth.v3.CheckResponse'),
    DiscoveryRequest: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    DiscoveryResponse: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
  };
  return loaded;
}

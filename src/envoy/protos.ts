/**
 * Envoy's official v3 API protos, loaded once from @grpc/grpc-js-xds (which ships them under
 * deps/) and shared by the SDS and ext_authz servers. One protobufjs Root serves both the gRPC
 * service definitions and direct message encoding (SDS pre-encodes each Secret once per push).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { loadProtoRoot, serviceDefinition } from '../lib/proto-services.js';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

const ENTRY_FILES = [
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/service/auth/v3/external_auth.proto',
];


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

function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  // protobufjs ships google/protobuf/descriptor.proto, which Envoy's annotations import.
  const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)), protobufjsDir];
}

/** A protobufjs Root holding the given Envoy API files and everything they import. */
export function loadEnvoyRoot(files: readonly string[]): protobuf.Root {
  return loadProtoRoot(files, protoIncludeDirs());
}

export function envoyProtos(): EnvoyProtos {
  if (loaded) return loaded;
  const root = loadEnvoyRoot(ENTRY_FILES);
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

/**
 * Envoy's official v3 API protos, loaded once from @grpc/grpc-js-xds (which ships them under
 * deps/) and shared by the SDS and ext_authz servers. One protobufjs Root serves both the gRPC
 * service definitions and direct message encoding (SDS pre-encodes each Secret once per push).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

const ENTRY_FILES = [
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/service/auth/v3/external_auth.proto',
];

/** How messages look in JS: field names as in the .proto (snake_case), 64-bit ints as strings. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

export interface EnvoyProtos {
  readonly root: protobuf.Root;
  readonly sdsService: grpc.ServiceDefinition;
  readonly authzService: grpc.ServiceDefinition;
  readonly Secret: protobuf.Type;
  readonly CheckRequest: protobuf.Type;
  readonly CheckResponse: protobuf.Type;
  readonly DiscoveryRequest: protobuf.Type;
  readonly DiscoveryResponse: protobuf.Type;
}

let loaded: EnvoyProtos | undefined;

export function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d));
}

export function envoyProtos(): EnvoyProtos {
  if (loaded) return loaded;
  const dirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target; // google/protobuf/* resolve from protobufjs' bundled copies
  };
  root.loadSync(ENTRY_FILES, { keepCase: true });
  root.resolveAll();
  const definition = protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS);
  const service = (name: string) => {
    const def = definition[name];
    if (!def || !Object.values(def).some((m) => typeof m === 'object' && m !== null && 'path' in m)) {
      throw new Error(`Envoy proto service ${name} is missing from @grpc/grpc-js-xds`);
    }
    return def as grpc.ServiceDefinition;
  };
  loaded = {
    root,
    sdsService: service(SDS_SERVICE),
    authzService: service(AUTHZ_SERVICE),
    Secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret'),
    CheckRequest: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    CheckResponse: root.lookupType('envoy.service.auth.v3.CheckResponse'),
    DiscoveryRequest: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    DiscoveryResponse: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
  };
  return loaded;
}

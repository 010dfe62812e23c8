/**
 * Envoy's official v3 API protos, loaded once from @grpc/grpc-js-xds (which ships them under
 * deps/) and shared by the SDS and ext_authz servers. One protobufjs Root serves both the gRPC
 * service definitions and direct message encoding (SDS pre-encodes each Secret once per push).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

const ENTRY_FILES = [
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/service/auth/v3/external_auth.proto',
];

/** How messages look in JS: field names as in the .proto (snake_case), 64-bit ints and enums as strings. */
export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
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
  // protobufjs ships google/protobuf/descriptor.proto, which Envoy's annotations import.
  const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)), protobufjsDir];
}

/** A protobufjs Root holding the given Envoy API files and everything they import. */
export function loadEnvoyRoot(files: readonly string[]): protobuf.Root {
  const dirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target; // the other google/protobuf/* types are built into protobufjs
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

export function envoyProtos(): EnvoyProtos {
  if (loaded) return loaded;
  const root = loadEnvoyRoot(ENTRY_FILES);
  loaded = {
    root,
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

/**
 * A gRPC service definition built from the already-loaded Root, as @grpc/proto-loader would build
 * it; building it through proto-loader instead would parse everything into a second Root (about
 * 7 MB of RSS and 40 ms of start-up).
 */
function serviceDefinition(root: protobuf.Root, name: string): grpc.ServiceDefinition {
  const service = root.lookupService(name);
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methodsArray) {
    const request = method.resolvedRequestType!;
    const response = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/${name}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (value: object) => Buffer.from(request.encode(request.fromObject(value)).finish()),
      requestDeserialize: (bytes: Buffer) => request.toObject(request.decode(bytes), TO_OBJECT_OPTIONS),
      responseSerialize: (value: object) => Buffer.from(response.encode(response.fromObject(value)).finish()),
      responseDeserialize: (bytes: Buffer) => response.toObject(response.decode(bytes), TO_OBJECT_OPTIONS),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}

/**
 * The build-time descriptor and gRPC service definitions straight from protobufjs, shared by the
 * Envoy APIs and the CA protocol. @grpc/proto-loader would do the same but build a second Root of
 * its own, which costs memory (about 7 MB for Envoy's APIs) and start-up time in every agent.
 */
import fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { packagePath } from './package-path.js';
import { startupMark } from './startup-timing.js';

/** How messages look in JS: field names as in the .proto (snake_case), 64-bit ints and enums as strings. */
export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

/** A Root from a protobufjs JSON descriptor written by the build (scripts/build-protos.mjs). */
export function loadDescriptor(file: string): protobuf.Root {
  const root = protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(file, 'utf8')) as protobuf.INamespace);
  root.resolveAll();
  return root;
}

let descriptor: protobuf.Root | undefined;

/**
 * Every protobuf type meshid speaks (Envoy's SDS and ext_authz APIs, the CA protocol), compiled
 * into one descriptor at build time: nothing parses .proto files at run time.
 */
export function protoRoot(): protobuf.Root {
  if (!descriptor) {
    startupMark('protos_load_start');
    descriptor = loadDescriptor(packagePath('dist', 'proto', 'meshid.json'));
    startupMark('protos_loaded');
  }
  return descriptor;
}

/**
 * A method as serviceDefinition builds it, typed with the generated message types: encoding
 * accepts the permissive type (Req, Res), decoding returns the __Output type (ReqOut, ResOut).
 */
export type TypedMethod<Req, Res, ReqOut, ResOut> = Omit<grpc.MethodDefinition<Req, Res>, 'requestDeserialize' | 'responseDeserialize'> & {
  requestDeserialize: (bytes: Buffer) => ReqOut;
  responseDeserialize: (bytes: Buffer) => ResOut;
};

/**
 * The service `name` of the descriptor with the type its generated messages give it, checked to
 * define each of `methods` (the descriptor and the types come from one build; this catches a
 * descriptor from another).
 */
export function typedServiceDefinition<T extends grpc.ServiceDefinition>(name: string, methods: ReadonlyArray<keyof T & string>): T {
  const def = serviceDefinition(protoRoot(), name);
  for (const m of methods) {
    if (def[m]?.path !== `/${name}/${m}`) throw new Error(`the proto descriptor does not define /${name}/${m}`);
  }
  return def as T;
}

/** The service `name` of root as a grpc-js service definition, as @grpc/proto-loader would build it. */
export function serviceDefinition(root: protobuf.Root, name: string): grpc.ServiceDefinition {
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

#!/usr/bin/env node
// @ts-check
/**
 * Build step (run by `npm run build`, before tsc): compiles the .proto files meshid speaks into
 *
 *   dist/proto/meshid.json    one protobufjs JSON descriptor: the only proto file the runtime loads
 *   src/generated/            TypeScript types of every message and service (git-ignored; tsc
 *                             compiles them with the rest; the lowest room of the layer table). Made by @grpc/proto-loader's
 *                             proto-loader-gen-types with the conventions of our runtime codec
 *                             (src/lib/proto-services.ts): .proto field names, 64-bit integers and
 *                             enums as strings, oneof names, no defaults. `Foo` is what encoding
 *                             accepts, `Foo__Output` what decoding returns.
 *   dist/test/protos/*.json   descriptors only tests read (Envoy's bootstrap, for the shape check
 *                             of deploy/envoy/envoy.yaml)
 *
 * Envoy's protos come from a development dependency (@grpc/grpc-js-xds ships Envoy's API and its
 * dependencies under deps/), ours from proto/. Nothing here is read at run time.
 *
 * Adding a proto is one line: its path (relative to proto/ or an Envoy include directory) in PROTOS.
 * This is plain JavaScript because it must run before tsc: the types it writes are tsc's input.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** The protos of the runtime descriptor and of the generated types; their imports come along. */
export const PROTOS = [
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/service/auth/v3/external_auth.proto',
  'istio_ca.proto',
  'jwt_svid.proto',
  'revocation.proto',
  'workload.proto',
];

/**
 * Types the runtime looks up by name besides those its services reach (Secret is packed into an
 * Any, StatusCode is read by `authz ask`). Everything neither reaches is left out of the runtime
 * descriptor: Envoy's validation, UDPA and xDS annotations and descriptor.proto are more than half
 * of what the imports bring, and protobufjs builds every type it is given when the agent starts.
 */
const RUNTIME_ROOTS = [
  'envoy.extensions.transport_sockets.tls.v3.Secret',
  'envoy.service.auth.v3.CheckRequest',
  'envoy.service.auth.v3.CheckResponse',
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
  'envoy.type.v3.StatusCode',
];

/** Test-only descriptors: output name -> protos. */
const TEST_PROTOS = {
  'envoy-bootstrap.json': [
    'envoy/config/bootstrap/v3/bootstrap.proto',
    'envoy/extensions/transport_sockets/tls/v3/tls.proto',
    'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
    'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
    'envoy/extensions/filters/http/router/v3/router.proto',
    'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  ],
};

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const packageDir = (/** @type {string} */ name) => path.dirname(require.resolve(`${name}/package.json`));

/** Where imports are looked up, ours first; protobufjs ships google/protobuf/descriptor.proto, which Envoy's annotations import. */
function includeDirs() {
  const deps = path.join(packageDir('@grpc/grpc-js-xds'), 'deps');
  const dirs = [path.join(ROOT, 'proto'), ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)), packageDir('protobufjs')];
  // Relative to the package: the generated files name their source, and no checkout's path.
  return dirs.map((d) => path.relative(ROOT, d));
}

/**
 * A protobufjs Root of files and everything they import, field names as in the .proto.
 * @param {readonly string[]} files
 * @param {readonly string[]} dirs
 */
function loadRoot(files, dirs) {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    const found = dirs.map((d) => path.join(ROOT, d, target)).find((p) => fs.existsSync(p));
    return found ?? target; // google/protobuf/{any,struct,duration,...}.proto are built into protobufjs
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/**
 * @param {string} file
 * @param {protobuf.Root} root
 */
function writeDescriptor(file, root) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(root.toJSON()));
}

/** @param {readonly string[]} dirs */
function generateTypes(dirs) {
  const outDir = path.join(ROOT, 'src', 'generated');
  fs.rmSync(outDir, { recursive: true, force: true }); // a dropped proto leaves no stale types
  const loader = packageDir('@grpc/proto-loader');
  const bin = /** @type {{ bin: Record<string, string> }} */ (JSON.parse(fs.readFileSync(path.join(loader, 'package.json'), 'utf8'))).bin;
  const args = [
    path.join(loader, bin['proto-loader-gen-types'] ?? ''),
    ...PROTOS,
    '--keepCase', '--longs=String', '--enums=String', '--oneofs',
    '--grpcLib=@grpc/grpc-js', '--importFileExtension=.js',
    `--outDir=${outDir}`,
    '-I', ...dirs,
  ];
  const run = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`proto-loader-gen-types failed (${run.status ?? run.signal}):\n${run.stderr}${run.stdout}`);
  // The per-file ProtoGrpcType files (<file>.ts) type proto-loader's loadPackageDefinition, which
  // meshid does not use (and they carry unused imports that noUnusedLocals rejects).
  for (const file of PROTOS) fs.rmSync(path.join(outDir, `${path.basename(file, '.proto')}.ts`));
}

/**
 * Removes from root every type and enum that no service method and no name in `roots` reaches
 * through message fields (nested types of a kept message count as reached), and every extension
 * field: options stay as plain values in the descriptor, the runtime never reads them.
 * @param {protobuf.Root} root
 * @param {readonly string[]} roots
 */
function pruneToReachable(root, roots) {
  /** @type {Set<protobuf.ReflectionObject>} */
  const kept = new Set();
  /** @type {protobuf.ReflectionObject[]} */
  const queue = roots.map((name) => root.lookup(name) ?? fail(`runtime root ${name} is not in the descriptor`));
  /** @type {protobuf.Field[]} */
  const extensions = [];
  const all = (/** @type {protobuf.NamespaceBase} */ ns, /** @type {(o: protobuf.ReflectionObject) => void} */ fn) => {
    for (const o of ns.nestedArray) {
      fn(o);
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type || o instanceof protobuf.Service) all(/** @type {protobuf.NamespaceBase} */ (o), fn);
    }
  };
  all(root, (o) => {
    if (o instanceof protobuf.Service) for (const m of o.methodsArray) queue.push(/** @type {protobuf.Type} */ (m.resolvedRequestType), /** @type {protobuf.Type} */ (m.resolvedResponseType));
    if (o instanceof protobuf.Field && o.extend !== undefined) extensions.push(o);
  });
  while (queue.length > 0) {
    const o = /** @type {protobuf.ReflectionObject} */ (queue.pop());
    if (kept.has(o)) continue;
    kept.add(o);
    if (o instanceof protobuf.Type) {
      for (const f of o.fieldsArray) if (f.resolvedType) queue.push(f.resolvedType);
      for (const n of o.nestedArray) if (n instanceof protobuf.Type || n instanceof protobuf.Enum) queue.push(n);
    }
  }
  for (const f of extensions) f.parent?.remove(f);
  /** @type {protobuf.ReflectionObject[]} */
  const drop = [];
  all(root, (o) => {
    if ((o instanceof protobuf.Type || o instanceof protobuf.Enum) && !kept.has(o) && !(o.parent && kept.has(o.parent))) drop.push(o);
  });
  for (const o of drop) o.parent?.remove(o);
  // Packages left empty go too.
  const empty = (/** @type {protobuf.NamespaceBase} */ ns) => {
    for (const o of [...ns.nestedArray]) {
      if (o.constructor === protobuf.Namespace) {
        empty(/** @type {protobuf.Namespace} */ (o));
        if (/** @type {protobuf.Namespace} */ (o).nestedArray.length === 0) ns.remove(o);
      }
    }
  };
  empty(root);
  root.resolveAll();
  return root;
}

/** @param {string} message @returns {never} */
function fail(message) {
  throw new Error(message);
}

function main() {
  const dirs = includeDirs();
  writeDescriptor(path.join(ROOT, 'dist', 'proto', 'meshid.json'), pruneToReachable(loadRoot(PROTOS, dirs), RUNTIME_ROOTS));
  for (const [name, files] of Object.entries(TEST_PROTOS)) writeDescriptor(path.join(ROOT, 'dist', 'test', 'protos', name), loadRoot(files, dirs));
  generateTypes(dirs);
}

main();

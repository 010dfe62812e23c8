import fs from 'node:fs';
import test from 'ava';
import protobuf from 'protobufjs';
import YAML from 'yaml';
import { DEFAULT_AUTHZ_SOCKET, DEFAULT_SDS_SOCKET, DEFAULT_TRUST_DOMAIN, SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../../src/config/defaults.js';
import { AUTHZ_SERVICE, SDS_SERVICE } from '../../src/envoy/protos.js';
import { packagePath } from '../../src/lib/package-path.js';
import { loadDescriptor, protoRoot } from '../../src/lib/proto-services.js';
import { checkMessage } from '../helpers/proto-shape.js';
import { type Bootstrap, clusterPipe as pipeOf, findAll } from './kubernetes-manifests.js';

const BOOTSTRAP = 'deploy/envoy/envoy.yaml';
const doc = YAML.parse(fs.readFileSync(BOOTSTRAP, 'utf8'), { merge: true }) as Record<string, any>;

// Envoy's bootstrap and the extensions it names, compiled by the build for this test only.
const root = loadDescriptor(packagePath('dist', 'test', 'protos', 'envoy-bootstrap.json'));

test('the bootstrap is a well-formed envoy.config.bootstrap.v3.Bootstrap (every field and @type known)', (t) => {
  const errors: string[] = [];
  checkMessage(root, root.lookupType('envoy.config.bootstrap.v3.Bootstrap'), doc, 'bootstrap', errors);
  t.deepEqual(errors, []);
});

test('the shape check catches typos (it can fail)', (t) => {
  const errors: string[] = [];
  const broken = structuredClone(doc);
  broken.static_resources.clusters[0].conect_timeout = '1s';
  broken.static_resources.listeners[0].filter_chains[0].transport_socket.typed_config['@type'] = 'type.googleapis.com/envoy.Nope';
  checkMessage(root, root.lookupType('envoy.config.bootstrap.v3.Bootstrap'), broken, 'bootstrap', errors);
  t.is(errors.length, 2, errors.join('\n'));
});

const clusterPipe = (name: string) => pipeOf(doc as Bootstrap, name);


test('SDS and ext_authz clusters point at the agent default sockets over HTTP/2', (t) => {
  t.is(clusterPipe('meshid_sds'), DEFAULT_SDS_SOCKET);
  t.is(clusterPipe('meshid_authz'), DEFAULT_AUTHZ_SOCKET);
  for (const name of ['meshid_sds', 'meshid_authz']) {
    const c = doc.static_resources.clusters.find((x: any) => x.name === name);
    const opts = c.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    t.truthy(opts.explicit_http_config.http2_protocol_options, `${name} must speak HTTP/2`);
  }
});

test('secrets requested are the ones meshid serves, from the meshid SDS cluster, waiting for the first fetch', (t) => {
  const certNames = findAll(doc, 'tls_certificate_sds_secret_configs').flatMap((l: any) => l.map((c: any) => c.name));
  const rootNames = findAll(doc, 'validation_context_sds_secret_config').map((c: any) => c.name);
  t.true(certNames.length >= 2);
  t.true(certNames.every((n) => n === SDS_WORKLOAD_SECRET));
  t.true(rootNames.every((n) => n === SDS_ROOT_SECRET));
  for (const cfg of findAll(doc, 'sds_config') as any[]) {
    t.is(cfg.api_config_source.grpc_services[0].envoy_grpc.cluster_name, 'meshid_sds');
    t.is(cfg.initial_fetch_timeout, '0s');
    t.is(cfg.resource_api_version, 'V3');
  }
});

test('inbound requires mTLS from the trust domain and asks meshid ext_authz, fail-closed, with the peer certificate', (t) => {
  const inbound = doc.static_resources.listeners.find((l: any) => l.name === 'inbound_mtls');
  const tls = inbound.filter_chains[0].transport_socket.typed_config;
  t.true(tls.require_client_certificate);
  const san = tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0];
  t.is(san.san_type, 'URI');
  t.is(san.matcher.prefix, `spiffe://${DEFAULT_TRUST_DOMAIN}/`);
  const hcm = inbound.filter_chains[0].filters[0].typed_config;
  const authz = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_authz').typed_config;
  t.false(authz.failure_mode_allow);
  t.true(authz.include_peer_certificate);
  t.is(authz.grpc_service.envoy_grpc.cluster_name, 'meshid_authz');
  t.regex(authz.grpc_service.timeout, /^\d+(\.\d+)?s$/);
  t.is(hcm.http_filters.at(-1).name, 'envoy.filters.http.router');
});

test('the services Envoy will call exist in the protos meshid serves', (t) => {
  const services = protoRoot();
  t.true(services.lookup(SDS_SERVICE) instanceof protobuf.Service);
  t.true(services.lookup(AUTHZ_SERVICE) instanceof protobuf.Service);
  const typeUrls = findAll(doc, '@type') as string[];
  t.true(typeUrls.includes('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'));
});

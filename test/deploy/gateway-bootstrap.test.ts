/**
 * deploy/envoy/gateway.yaml, the partner gateway: a well-formed Envoy bootstrap whose listener
 * validates client certificates with meshid's `partners` secret and asks meshid's ext_authz with
 * the peer certificate, fail-closed.
 */
import fs from 'node:fs';
import test from 'ava';
import YAML from 'yaml';
import { DEFAULT_AUTHZ_SOCKET, DEFAULT_SDS_SOCKET, SDS_PARTNERS_SECRET, SDS_WORKLOAD_SECRET } from '../../src/config/defaults.js';
import { packagePath } from '../../src/lib/package-path.js';
import { loadDescriptor } from '../../src/lib/proto-services.js';
import { parseSecretName } from '../../src/sds/resource-names.js';
import { checkMessage } from '../helpers/proto-shape.js';
import { type Bootstrap, clusterPipe, findAll } from './kubernetes-manifests.js';

const doc = YAML.parse(fs.readFileSync('deploy/envoy/gateway.yaml', 'utf8'), { merge: true }) as Record<string, any>;
const root = loadDescriptor(packagePath('dist', 'test', 'protos', 'envoy-bootstrap.json'));

test('the gateway bootstrap is a well-formed envoy.config.bootstrap.v3.Bootstrap', (t) => {
  const errors: string[] = [];
  checkMessage(root, root.lookupType('envoy.config.bootstrap.v3.Bootstrap'), doc, 'bootstrap', errors);
  t.deepEqual(errors, []);
});

test('the gateway requires a client certificate, validates it with the partners secret and asks ext_authz with it', (t) => {
  t.is(clusterPipe(doc as Bootstrap, 'meshid_sds'), DEFAULT_SDS_SOCKET);
  t.is(clusterPipe(doc as Bootstrap, 'meshid_authz'), DEFAULT_AUTHZ_SOCKET);
  const listener = doc.static_resources.listeners.find((l: any) => l.name === 'partner_gateway');
  const tls = listener.filter_chains[0].transport_socket.typed_config;
  t.true(tls.require_client_certificate);
  t.is(tls.common_tls_context.validation_context_sds_secret_config.name, SDS_PARTNERS_SECRET);
  t.is(parseSecretName(SDS_PARTNERS_SECRET).kind, 'partners');
  t.deepEqual(tls.common_tls_context.tls_certificate_sds_secret_configs.map((c: any) => c.name), [SDS_WORKLOAD_SECRET]);
  for (const cfg of findAll(doc, 'sds_config') as any[]) t.is(cfg.api_config_source.grpc_services[0].envoy_grpc.cluster_name, 'meshid_sds');
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  const authz = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_authz').typed_config;
  t.false(authz.failure_mode_allow);
  t.true(authz.include_peer_certificate, 'meshid needs the certificate to map a partner CA certificate');
  t.is(authz.grpc_service.envoy_grpc.cluster_name, 'meshid_authz');
  t.is(hcm.http_filters.at(-1).name, 'envoy.filters.http.router');
});

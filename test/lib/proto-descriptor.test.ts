import test from 'ava';
import { envoyProtos } from '../../src/envoy/protos.js';
import { protoRoot } from '../../src/lib/proto-services.js';

test('the runtime descriptor leaves out what no service reaches (annotations, descriptor.proto) and keeps every type a service or a named lookup needs', (t) => {
  const root = protoRoot();
  for (const gone of ['validate', 'udpa', 'google.protobuf.FileDescriptorProto', 'google.protobuf.FieldOptions', 'xds.annotations']) {
    t.is(root.lookup(gone), null, `${gone} should not be in the runtime descriptor`);
  }
  const envoy = envoyProtos();
  // A Secret with every part SDS fills in round-trips, so the types its fields reach were kept.
  const secret = {
    name: 'default',
    tls_certificate: { certificate_chain: { inline_bytes: Buffer.from('c') }, private_key: { inline_bytes: Buffer.from('k') } },
  };
  const again = envoy.Secret.toObject(envoy.Secret.decode(envoy.Secret.encode(envoy.Secret.fromObject(secret)).finish()));
  t.deepEqual(again.tls_certificate.certificate_chain.inline_bytes, Buffer.from('c'));
  t.truthy(root.lookupEnum('envoy.type.v3.StatusCode').values.Forbidden);
  for (const service of ['envoy.service.secret.v3.SecretDiscoveryService', 'envoy.service.auth.v3.Authorization', 'istio.v1.auth.IstioCertificateService', 'SpiffeWorkloadAPI']) {
    const s = root.lookupService(service);
    for (const m of s.methodsArray) t.truthy(m.resolvedRequestType && m.resolvedResponseType, `${service}/${m.name}`);
  }
});

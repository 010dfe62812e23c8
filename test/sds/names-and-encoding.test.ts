import test from 'ava';
import { envoyProtos, SECRET_TYPE_URL } from '../../src/envoy/protos.js';
import { type ErrorCode, MeshidError } from '../../src/lib/errors.js';
import { parseSecretName } from '../../src/sds/resource-names.js';
import { encodeSecret, responseWithNonce } from '../../src/sds/secret-encoding.js';

test('secret names are classified, and file paths must be absolute', (t) => {
  t.deepEqual(parseSecretName('default'), { kind: 'workload', name: 'default' });
  t.deepEqual(parseSecretName('ROOTCA'), { kind: 'bundle', name: 'ROOTCA' });
  t.deepEqual(parseSecretName('spiffe://cluster.local'), { kind: 'trust-domain-bundle', name: 'spiffe://cluster.local', trustDomain: 'cluster.local' });
  t.deepEqual(parseSecretName('file-cert:/etc/certs/cert-chain.pem~/etc/certs/key.pem'), {
    kind: 'file-cert',
    name: 'file-cert:/etc/certs/cert-chain.pem~/etc/certs/key.pem',
    certPath: '/etc/certs/cert-chain.pem',
    keyPath: '/etc/certs/key.pem',
  });
  t.deepEqual(parseSecretName('file-root:/etc/certs/../certs/root-cert.pem'), { kind: 'file-root', name: 'file-root:/etc/certs/../certs/root-cert.pem', path: '/etc/certs/root-cert.pem' });
  const refused: Array<[string, ErrorCode]> = [
    ['', 'sds_unknown_secret'],
    ['Default', 'sds_unknown_secret'],
    ['rootca', 'sds_unknown_secret'],
    ['spiffe://', 'sds_unknown_secret'],
    ['file-cert:/a~/b~/c', 'sds_bad_file_cert_name'],
    ['file-cert:/a~', 'sds_bad_file_cert_name'],
    ['file-cert:a~/b', 'sds_relative_file_path'],
    ['file-root:', 'sds_bad_file_root_name'],
  ];
  for (const [name, code] of refused) {
    const e = t.throws(() => parseSecretName(name), { instanceOf: MeshidError }, name);
    t.is(e?.code, code, name);
  }
});

test('a pre-encoded response plus a per-stream nonce decodes as one DiscoveryResponse holding one Secret', (t) => {
  const { DiscoveryResponse, Secret } = envoyProtos();
  const enc = encodeSecret('ROOTCA', 'v7', { type: 'validation_context', trustedCaPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' });
  const a = DiscoveryResponse.toObject(DiscoveryResponse.decode(responseWithNonce(enc, 'n1'))) as { version_info: string; nonce: string; type_url: string; resources: Array<{ type_url: string; value: Uint8Array }> };
  const b = DiscoveryResponse.toObject(DiscoveryResponse.decode(responseWithNonce(enc, 'n2'))) as typeof a;
  t.is(a.version_info, 'v7');
  t.is(a.type_url, SECRET_TYPE_URL);
  t.is(a.nonce, 'n1');
  t.is(b.nonce, 'n2');
  t.is(a.resources.length, 1);
  t.is(a.resources[0]!.type_url, SECRET_TYPE_URL);
  const secret = Secret.toObject(Secret.decode(a.resources[0]!.value)) as { name: string; validation_context: { trusted_ca: { inline_bytes: Uint8Array } } };
  t.is(secret.name, 'ROOTCA');
  t.is(Buffer.from(secret.validation_context.trusted_ca.inline_bytes).toString(), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const shared = DiscoveryResponse.toObject(DiscoveryResponse.decode(enc.response)) as typeof a;
  t.is(shared.nonce, enc.nonce, 'the shared response carries the shared nonce');
  t.deepEqual({ ...shared, nonce: '' }, { ...a, nonce: '' }, 'the shared response differs from a per-stream one only in its nonce');
  const later = encodeSecret('ROOTCA', 'v7', { type: 'validation_context', trustedCaPem: 'x' });
  t.true(later.seq > enc.seq);
  t.not(later.nonce, enc.nonce);
});

import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { parseCertificate } from '../../src/identity/certificate.js';
import { splitDer } from '../../src/identity/der.js';
import { decodePemOf } from '../../src/identity/pem.js';
import crypto from 'node:crypto';
import type { X509BundlesResponse__Output, X509SVIDResponse__Output } from '../../src/workload/protocol.js';
import { opensslVerify } from '../helpers/openssl.js';
import { eventually } from '../sds/support.js';
import { openStream, securityMetadata, startWorkloadStand, unary } from './support.js';

const METHODS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTSVID', 'FetchJWTBundles', 'ValidateJWTSVID'] as const;
const STREAMS = new Set(['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles']);

test('every method refuses a call without "workload.spiffe.io: true" with INVALID_ARGUMENT', async (t) => {
  const s = await startWorkloadStand(t);
  const client = s.raw();
  for (const header of [null, 'false', 'TRUE']) {
    for (const method of METHODS) {
      const request = method === 'FetchJWTSVID' ? { audience: ['a'] } : method === 'ValidateJWTSVID' ? { audience: 'a', svid: 'x.y.z' } : {};
      const err = STREAMS.has(method)
        ? await openStream(client, method, securityMetadata(header)).error
        : await unary(client, method, request, securityMetadata(header)).then((r) => (r.ok ? undefined : r.err));
      t.is(err?.code, grpc.status.INVALID_ARGUMENT, `${method} with ${header ?? 'no header'}`);
      t.regex(err?.details ?? '', /security header missing.*workload\.spiffe\.io: true/, method);
    }
  }
});

test('FetchX509SVID waits for the first SVID, then sends DER chain, PKCS#8 key and bundle, and again on every rotation', async (t) => {
  const s = await startWorkloadStand(t, { identity: { ready: false } });
  const stream = openStream<X509SVIDResponse__Output>(s.raw(), 'FetchX509SVID', securityMetadata());
  await new Promise((r) => setTimeout(r, 200));
  t.is(stream.messages.length, 0, 'nothing before an SVID exists, and no error');

  s.source.publishBundle();
  t.is(stream.messages.length, 0, 'a bundle alone is not an SVID');
  const first = s.source.rotate();
  await eventually(() => stream.messages.length === 1, 5000, 'the first response');
  const svid = stream.messages[0]!.svids![0]!;
  t.is(svid.spiffe_id, s.source.spiffeId);
  const chain = splitDer(svid.x509_svid!, 'chain');
  t.deepEqual(chain, decodePemOf(first.certChainPem, 'CERTIFICATE', 'chain'));
  const leaf = parseCertificate(chain[0]!);
  const key = crypto.createPrivateKey({ key: svid.x509_svid_key!, format: 'der', type: 'pkcs8' });
  t.true(new crypto.X509Certificate(leaf.der).checkPrivateKey(key), 'the key is the leaf\'s, as PKCS#8 DER');
  const roots = splitDer(svid.bundle!, 'bundle');
  t.deepEqual(roots, s.source.bundleRoots().map((r) => r.cert.der));
  const v = opensslVerify(s.dir, { roots: s.source.bundleRoots().map((r) => r.pem).join(''), leaf: first.certChainPem });
  t.true(v.ok, v.output);

  for (let i = 0; i < 3; i++) {
    const next = s.source.rotate();
    await eventually(() => stream.messages.length === i + 2, 5000, `response after rotation ${i + 1}`);
    t.is(parseCertificate(splitDer(stream.messages[i + 1]!.svids![0]!.x509_svid!, 'chain')[0]!).serial, next.version);
  }
  s.source.notify();
  await new Promise((r) => setTimeout(r, 100));
  t.is(stream.messages.length, 4, 'an unchanged state is not sent again');
  stream.call.cancel();
});

test('FetchX509Bundles streams the bundle by trust domain ID and pushes a root change; close ends streams with UNAVAILABLE', async (t) => {
  const s = await startWorkloadStand(t);
  const stream = openStream<X509BundlesResponse__Output>(s.raw(), 'FetchX509Bundles', securityMetadata());
  await eventually(() => stream.messages.length === 1, 5000, 'the first bundle');
  const bundles = stream.messages[0]!.bundles!;
  t.deepEqual(Object.keys(bundles), [`spiffe://${s.source.trustDomain}`]);
  t.is(splitDer(Buffer.from(bundles[`spiffe://${s.source.trustDomain}`]!), 'bundle').length, 1);
  s.source.rotate();
  await new Promise((r) => setTimeout(r, 100));
  t.is(stream.messages.length, 1, 'an SVID rotation does not change the bundle');
  s.source.addRoot();
  await eventually(() => stream.messages.length === 2, 5000, 'the new bundle');
  t.is(splitDer(Buffer.from(stream.messages[1]!.bundles![`spiffe://${s.source.trustDomain}`]!), 'bundle').length, 2);

  await s.server.close();
  const err = await stream.error;
  t.is(err.code, grpc.status.UNAVAILABLE);
  t.regex(err.details, /shutting down/);
});

test('a unary JWT call before the first SVID waits up to its deadline; without a JWT source the JWT methods are UNAVAILABLE', async (t) => {
  const s = await startWorkloadStand(t, { identity: { ready: false } });
  const client = s.raw();
  const early = await unary(client, 'FetchJWTSVID', { audience: ['db'] }, securityMetadata(), 300);
  t.false(early.ok);
  if (!early.ok) t.is(early.err.code, grpc.status.DEADLINE_EXCEEDED, 'it waited, it did not fail');
  s.source.publishBundle();
  s.source.rotate();
  const r = await unary(client, 'FetchJWTSVID', { audience: ['db'] }, securityMetadata());
  t.false(r.ok);
  if (!r.ok) t.is(r.err.code, grpc.status.UNAVAILABLE);
  const noAudience = await unary(client, 'FetchJWTSVID', {}, securityMetadata());
  t.true(!noAudience.ok && noAudience.err.code === grpc.status.INVALID_ARGUMENT && /audience is required/.test(noAudience.err.details));
  const other = await unary(client, 'FetchJWTSVID', { audience: ['db'], spiffe_id: 'spiffe://example.org/other' }, securityMetadata());
  t.true(!other.ok && other.err.code === grpc.status.PERMISSION_DENIED);
  const bundles = await openStream(client, 'FetchJWTBundles', securityMetadata()).error;
  t.is(bundles.code, grpc.status.UNAVAILABLE);
});

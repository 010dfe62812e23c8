/** Who may get a certificate: bearer JWTs, static tokens and mTLS renewal, over real gRPC/TLS. */
import crypto from 'node:crypto';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { caServiceDefinition, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/ca/protocol.js';
import { decodeDer } from '../../src/identity/der.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import fs from 'node:fs';
import path from 'node:path';
import { BACKEND, csrFor, FRONTEND, JWT_ISSUER, leafOf, mtlsAuth, serviceAccountToken, STATIC_TOKEN, startHarness } from './harness.js';

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('a service-account JWT maps to spiffe://<td>/ns/<ns>/sa/<sa>, from sub, from the kubernetes.io claim, or both', async (t) => {
  const h = await startHarness(t);
  const cases = [
    { claims: undefined },
    { claims: { sub: 'system:serviceaccount:shop:backend' } },
    { claims: { 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'backend' } } } },
  ];
  for (const c of cases) {
    const jwt = await serviceAccountToken(h.jwtKey.privateKey, { sa: 'backend', ...(c.claims ? { claims: c.claims } : {}) });
    const r = await h.client.createCertificate(csrFor(BACKEND).pem, { kind: 'token', token: jwt });
    if (!r.ok) return t.fail(r.message);
    t.deepEqual(leafOf(r.chainPem).sans, [{ type: 'uri', value: BACKEND }]);
  }
  t.like(h.logs.find((l) => l.event === 'certificate_issued'), { auth: 'jwt', identity: BACKEND });
});

test('JWTs are refused with UNAUTHENTICATED and a message saying why', async (t) => {
  const h = await startHarness(t);
  const key = h.jwtKey.privateKey;
  const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const claims = { sub: 'system:serviceaccount:shop:frontend' };
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, Promise<string> | string, RegExp]> = [
    ['forged (another key, same kid)', serviceAccountToken(other.privateKey), /signature does not verify with any configured key/],
    ['expired', serviceAccountToken(key, { expiresAt: Date.now() - 3_600_000 }), /token expired at/],
    ['wrong issuer', serviceAccountToken(key, { issuer: 'https://evil.example' }), /issuer "https:\/\/evil.example" is not the expected/],
    ['wrong audience', serviceAccountToken(key, { audience: 'not-istio-ca' }), /audience "not-istio-ca" does not include "istio-ca"/],
    ['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, iss: JWT_ISSUER, aud: 'istio-ca', exp: now + 600 })}.`, /algorithm "none" is not allowed/],
    [
      'HS256 (a shared secret)',
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'sa-key-1' }).setIssuer(JWT_ISSUER).setAudience('istio-ca').setExpirationTime('1h').sign(new TextEncoder().encode('s3cret-s3cret-s3cret-s3cret-s3cret')),
      /algorithm "HS256" is not allowed/,
    ],
    [
      'RS256 where only an EC key is configured',
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'sa-key-1' }).setIssuer(JWT_ISSUER).setAudience('istio-ca').setExpirationTime('1h').sign(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
      /no configured key can verify an RS256 token/,
    ],
    ['no expiry', new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'sa-key-1' }).setIssuer(JWT_ISSUER).setAudience('istio-ca').sign(key), /claim "exp" is missing/],
    ['no service account', serviceAccountToken(key, { claims: { sub: 'alice' } }), /names no Kubernetes service account/],
    [
      'inconsistent claims',
      serviceAccountToken(key, { claims: { sub: 'system:serviceaccount:shop:frontend', 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'admin' } } } }),
      /name different service accounts/,
    ],
  ];
  for (const [name, tokenP, message] of cases) {
    const r = await h.client.createCertificate(csrFor(FRONTEND).pem, { kind: 'token', token: await tokenP });
    t.like(r, { ok: false, kind: 'unauthenticated', grpcCode: grpc.status.UNAUTHENTICATED }, name);
    if (!r.ok) t.regex(r.message, message, name);
  }
  const refusals = h.logs.filter((l) => l.event === 'certificate_refused');
  t.is(refusals.length, cases.length, 'every refusal is logged');
  t.true(refusals.every((l) => typeof l.reason === 'string' && l.status === 'UNAUTHENTICATED'));
});

test('no credentials, a malformed authorization value and an unknown static token are UNAUTHENTICATED', async (t) => {
  const h = await startHarness(t);
  const raw = rawClient(h.ca.address, h.ca.bundlePem);
  t.teardown(() => raw.close());
  const none = await call(raw, { csr: csrFor(FRONTEND).pem });
  t.is(none.code, grpc.status.UNAUTHENTICATED);
  t.regex(none.details, /no credentials: present a client certificate issued by this CA or "authorization: Bearer <token>"/);
  const basic = await call(raw, { csr: csrFor(FRONTEND).pem }, { authorization: 'Basic dXNlcjpwYXNz' });
  t.is(basic.code, grpc.status.UNAUTHENTICATED);
  t.regex(basic.details, /not of the form "Bearer <token>"/);
  const unknown = await h.client.createCertificate(csrFor(FRONTEND).pem, { kind: 'token', token: 'not-a-known-token' });
  t.like(unknown, { ok: false, kind: 'unauthenticated', message: `CA ${h.ca.address}: bearer token refused: not a valid JWT and not a known static token` });
});

test('renewal over mTLS: the identity comes from the presented SVID, even when a bearer token names someone else', async (t) => {
  const h = await startHarness(t);
  const first = csrFor(FRONTEND);
  const r1 = await h.client.createCertificate(first.pem, { kind: 'token', token: STATIC_TOKEN });
  if (!r1.ok) return t.fail(r1.message);
  const auth = mtlsAuth(r1.chainPem, first.key);

  const renewed = await h.client.createCertificate(csrFor(FRONTEND).pem, auth);
  if (!renewed.ok) return t.fail(renewed.message);
  t.deepEqual(leafOf(renewed.chainPem).sans, [{ type: 'uri', value: FRONTEND }]);
  t.like(h.logs.filter((l) => l.event === 'certificate_issued').at(-1), { auth: 'mtls', identity: FRONTEND });

  // The same SVID cannot be used to obtain another identity.
  const other = await h.client.createCertificate(csrFor(BACKEND).pem, auth);
  t.like(other, { ok: false, kind: 'permission_denied', grpcCode: grpc.status.PERMISSION_DENIED });

  // mTLS comes first: a backend JWT alongside the frontend SVID still yields the frontend.
  const backendJwt = await serviceAccountToken(h.jwtKey.privateKey, { sa: 'backend' });
  const raw = rawClient(h.ca.address, h.ca.bundlePem, auth);
  t.teardown(() => raw.close());
  const both = await call(raw, { csr: csrFor(FRONTEND).pem }, { authorization: `Bearer ${backendJwt}` });
  t.is(both.code, grpc.status.OK, both.details);
  t.deepEqual(leafOf(both.response!.cert_chain!).sans, [{ type: 'uri', value: FRONTEND }]);
});

test('mTLS with an SVID expired by the CA clock is refused with the reason', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, {}, { clock });
  const first = csrFor(FRONTEND);
  const r1 = await h.client.createCertificate(first.pem, { kind: 'token', token: STATIC_TOKEN }, 600);
  if (!r1.ok) return t.fail(r1.message);
  clock.jump(700_000); // TLS (wall clock) still accepts it; the CA's own check must not
  const r2 = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth(r1.chainPem, first.key));
  t.like(r2, { ok: false, kind: 'unauthenticated' });
  if (!r2.ok) t.regex(r2.message, /client certificate refused: .*expired at/);
});

test('mTLS with a certificate this CA did not issue, or one TLS rejects as expired, does not authenticate', async (t) => {
  const h = await startHarness(t);
  // An SVID for the right identity from a foreign root: TLS does not verify it, so no peer identity.
  const foreignRoot = makeRoot('example.org');
  const foreign = makeLeaf(foreignRoot, FRONTEND);
  const r1 = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth([foreign.pem, foreignRoot.pem], foreign.key));
  t.like(r1, { ok: false, kind: 'unauthenticated' });
  if (!r1.ok) t.regex(r1.message, /no credentials/);

  // An expired SVID signed by this CA's own root key.
  const [rootCert] = parseCertificatesPem(fs.readFileSync(path.join(h.stateDir, 'root-cert.pem'), 'utf8'), 'root');
  const rootKey = crypto.createPrivateKey(fs.readFileSync(path.join(h.stateDir, 'root-key.pem')));
  const issuer = { cert: rootCert!, der: rootCert!.der, pem: h.ca.bundlePem, key: { algorithm: 'ec-p256' as const, privateKey: rootKey, publicKey: crypto.createPublicKey(rootKey) }, name: decodeDer(rootCert!.subject, 'name') };
  const expired = makeLeaf(issuer, FRONTEND, { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000), key: generateKeyPairSync() });
  const r2 = await h.client.createCertificate(csrFor(FRONTEND).pem, mtlsAuth([expired.pem, h.ca.bundlePem], expired.key));
  t.like(r2, { ok: false, kind: 'unauthenticated' });
});

// ---- a raw grpc-js client, for metadata the typed client never sends ----

function rawClient(address: string, bundlePem: string, mtls?: { certChainPem: string; privateKeyPem: string }): grpc.Client {
  const creds = mtls
    ? grpc.credentials.createSsl(Buffer.from(bundlePem), Buffer.from(mtls.privateKeyPem), Buffer.from(mtls.certChainPem))
    : grpc.credentials.createSsl(Buffer.from(bundlePem));
  return new grpc.Client(address, creds);
}

function call(client: grpc.Client, request: IstioCertificateRequest, headers: Record<string, string> = {}): Promise<{ code: number; details: string; response?: IstioCertificateResponse }> {
  const m = caServiceDefinition().CreateCertificate;
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, { deadline: Date.now() + 5000 }, (err, response) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', ...(response ? { response } : {}) }),
    );
  });
}

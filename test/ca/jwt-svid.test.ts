/** MintJWTSVID and FetchJWTBundle on the reference CA: who may mint, what is signed, what is refused. */
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startCa } from '../../src/ca/server.js';
import { captureLogs } from '../helpers/logs.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { csrFor, FRONTEND, mtlsAuth, STATIC_TOKEN, startHarness } from './harness.js';

test('a caller authenticated by token or by its SVID gets an ES256 JWT-SVID naming itself; the JWKS verifies it; the key and kid survive a restart', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { jwtSvidTtl: 120_000 }, { clock });
  const minted = await h.client.mintJwtSvid(['db'], { kind: 'token', token: STATIC_TOKEN }, 3600);
  if (!minted.ok) return t.fail(minted.message);
  t.is(minted.response.spiffeId, FRONTEND);
  t.is(minted.response.expiresAt, Math.floor(clock.now() / 1000) + 120, 'a longer request is clamped to --jwt-svid-ttl');
  const bundle = await h.client.fetchJwtBundle({ kind: 'token', token: 'not needed' });
  if (!bundle.ok) return t.fail(bundle.message);
  t.is(bundle.response.trustDomain, h.ca.trustDomain);
  const jwks = JSON.parse(bundle.response.jwks) as { keys: Array<{ kid: string }> };
  const { payload, protectedHeader } = await jwtVerify(minted.response.token, createLocalJWKSet(jwks), { audience: 'db', currentDate: new Date(clock.now()) });
  t.like(protectedHeader, { alg: 'ES256', typ: 'JWT', kid: jwks.keys[0]!.kid });
  t.is(payload.sub, FRONTEND);

  const csr = csrFor(FRONTEND);
  const issued = await h.client.createCertificate(csr.pem, { kind: 'token', token: STATIC_TOKEN });
  if (!issued.ok) return t.fail(issued.message);
  const viaMtls = await h.client.mintJwtSvid(['db', 'cache'], mtlsAuth(issued.chainPem, csr.key), 30);
  if (!viaMtls.ok) return t.fail(viaMtls.message);
  t.is(viaMtls.response.spiffeId, FRONTEND);
  t.is(viaMtls.response.expiresAt, Math.floor(clock.now() / 1000) + 30);

  await h.ca.close();
  const again = await startCa(h.config, { clock, logger: captureLogs().logger });
  t.teardown(() => again.close());
  const { CaClient } = await import('../../src/ca/client.js');
  const client2 = new CaClient({ address: again.address, caBundlePem: again.bundlePem });
  t.teardown(() => client2.close());
  const bundle2 = await client2.fetchJwtBundle({ kind: 'token', token: 'x' });
  t.true(bundle2.ok && bundle2.response.jwks === bundle.response.jwks, 'the same key after a restart');
  t.is(decodeProtectedHeader(minted.response.token).kid, jwks.keys[0]!.kid);
});

test('MintJWTSVID refuses a caller without credentials, with a bad token, and a request without audience', async (t) => {
  const h = await startHarness(t);
  const none = await h.client.mintJwtSvid(['db'], { kind: 'token', token: '' });
  t.like(none, { ok: false, grpcCode: grpc.status.UNAUTHENTICATED });
  const bad = await h.client.mintJwtSvid(['db'], { kind: 'token', token: 'wrong-token-wrong-token' });
  t.like(bad, { ok: false, grpcCode: grpc.status.UNAUTHENTICATED });
  const noAudience = await h.client.mintJwtSvid([], { kind: 'token', token: STATIC_TOKEN });
  t.like(noAudience, { ok: false, grpcCode: grpc.status.INVALID_ARGUMENT });
  t.regex(!noAudience.ok ? noAudience.message : '', /at least one audience/);
  const long = await h.client.mintJwtSvid(['x'.repeat(513)], { kind: 'token', token: STATIC_TOKEN });
  t.like(long, { ok: false, grpcCode: grpc.status.INVALID_ARGUMENT });
  t.true(h.logs.some((l) => l.event === 'jwt_svid_refused' && l.reason === 'jwt_svid_no_audience'));
});

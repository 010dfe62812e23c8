/**
 * JwtSvids on a fake clock with an in-process signer that really signs (the reference CA's
 * JwtSvidIssuer), and one that answers as istiod does (UNIMPLEMENTED).
 */
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { JwtSvidIssuer } from '../../src/ca/jwt-svid.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import crypto from 'node:crypto';
import { peerSpiffeId } from '../../src/workload/peer.js';
import { type JwtSigner, JwtSvids } from '../../src/workload/jwt-svids.js';
import { captureLogs } from '../helpers/logs.js';
import { startWorkloadStand, securityMetadata, unary, openStream } from './support.js';
import type { FakeClock } from '../helpers/fake-clock.js';
import type { TestIdentitySource } from '../helpers/test-identity-source.js';

function signer(issuer: JwtSvidIssuer, clock: FakeClock, calls: string[]): JwtSigner {
  return {
    async mintJwtSvid(audiences, auth, ttl) {
      calls.push('mint');
      const id = peerSpiffeId(new crypto.X509Certificate(auth.certChainPem).raw);
      const m = await issuer.mint(id, audiences, ttl, clock.now());
      return { ok: true, response: m };
    },
    async fetchJwtBundle() {
      calls.push('bundle');
      return { ok: true, response: { trustDomain: issuer.trustDomain, jwks: issuer.jwks() } };
    },
  };
}

const istiod: JwtSigner = {
  mintJwtSvid: async () => ({ ok: false, kind: 'unimplemented', grpcCode: grpc.status.UNIMPLEMENTED, message: 'unknown service meshid.ca.v1.JwtSvidService' }),
  fetchJwtBundle: async () => ({ ok: false, kind: 'unimplemented', grpcCode: grpc.status.UNIMPLEMENTED, message: 'unknown service meshid.ca.v1.JwtSvidService' }),
};

function jwtFor(source: TestIdentitySource, clock: FakeClock, s: JwtSigner): JwtSvids {
  return new JwtSvids({ signer: s, source, clock, logger: captureLogs().logger, caAddress: 'ca.test:15012' });
}

test('tokens are cached per audience set for half their lifetime; an expired token does not validate; a new X.509-SVID refetches the bundle', async (t) => {
  const calls: string[] = [];
  const s = await startWorkloadStand(t);
  const issuer = await JwtSvidIssuer.create(generateKeyPairSync('ec-p256').privateKey, s.source.trustDomain, 120_000);
  const jwt = jwtFor(s.source, s.clock, signer(issuer, s.clock, calls));
  t.teardown(() => jwt.stop());
  const a = await jwt.fetchSvid(['x', 'y']);
  t.is(a.spiffeId, s.source.spiffeId);
  t.is((await jwt.fetchSvid(['y', 'x', 'x'])).token, a.token);
  await s.clock.advance(59_000);
  t.is((await jwt.fetchSvid(['x', 'y'])).token, a.token, 'still fresh before half its lifetime');
  await s.clock.advance(2_000);
  const b = await jwt.fetchSvid(['x', 'y']);
  t.not(b.token, a.token, 'renewed past half its lifetime');
  t.deepEqual(calls, ['mint', 'mint']);

  t.is((await jwt.validate(a.token, 'x')).spiffeId, s.source.spiffeId);
  await s.clock.advance(60_000 + 30_000); // past exp and the 30 s tolerance
  const e = await t.throwsAsync(jwt.validate(a.token, 'x'));
  t.regex(e!.message, /expired/);
  t.is(calls.filter((c) => c === 'bundle').length, 1);
  s.source.rotate();
  await s.clock.advance(0);
  t.is(calls.filter((c) => c === 'bundle').length, 2, 'the X.509 rotation refetched the JWKS');
});

test('with a CA that has no JWT-SVID service (istiod), every JWT method answers UNAVAILABLE saying so; X.509 still works', async (t) => {
  let jwt: JwtSvids | undefined;
  const s = await startWorkloadStand(t, {
    jwt: {
      fetchSvid: (a) => jwt!.fetchSvid(a),
      bundles: () => jwt!.bundles(),
      currentBundles: () => jwt!.currentBundles(),
      validate: (tok, aud) => jwt!.validate(tok, aud),
      subscribe: (l) => jwt!.subscribe(l),
    },
  });
  jwt = jwtFor(s.source, s.clock, istiod);
  t.teardown(() => jwt!.stop());
  const client = s.raw();
  const message = /JWT-SVIDs are not available: the CA at ca\.test:15012 cannot .*UNIMPLEMENTED; istiod and istio-csr issue X\.509-SVIDs only/;
  const mint = await unary(client, 'FetchJWTSVID', { audience: ['db'] }, securityMetadata());
  t.true(!mint.ok && mint.err.code === grpc.status.UNAVAILABLE && message.test(mint.err.details), JSON.stringify(!mint.ok && mint.err.details));
  const validate = await unary(client, 'ValidateJWTSVID', { audience: 'db', svid: 'a.b.c' }, securityMetadata());
  t.true(!validate.ok && validate.err.code === grpc.status.UNAVAILABLE && message.test(validate.err.details));
  const bundles = await openStream(client, 'FetchJWTBundles', securityMetadata()).error;
  t.is(bundles.code, grpc.status.UNAVAILABLE);
  t.regex(bundles.details, message);
  const x509 = openStream(client, 'FetchX509SVID', securityMetadata());
  await new Promise<void>((resolve) => x509.call.once('data', () => resolve()));
  t.pass();
  x509.call.cancel();
});

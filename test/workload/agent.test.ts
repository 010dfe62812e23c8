/**
 * The Workload API of a real agent in front of the real reference CA: X.509-SVIDs through
 * rotations, JWT-SVIDs minted by the CA for the agent's identity, the JWKS, validation.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { WorkloadApiClient } from '../../src/workload/client.js';
import { ORDERS, Stand, TD } from '../agent/stand.js';
import { opensslVerify } from '../helpers/openssl.js';

async function standWithWorkloadApi(t: Parameters<typeof Stand.start>[0]) {
  const stand = await Stand.start(t, { agentArgs: (dir) => [`--workload-api-socket=${path.join(dir, 'workload.sock')}`] });
  const client = new WorkloadApiClient({ socketPath: `unix://${stand.agent.workloadApi!.socketPath}`, clock: stand.clock });
  t.teardown(() => client.close());
  return { stand, client };
}

test('a Node client gets the X.509-SVID from the agent and a new one on every rotation', async (t) => {
  const { stand, client } = await standWithWorkloadApi(t);
  const first = await client.ready();
  t.is(first.spiffeId, ORDERS);
  t.is(first.certChainPem, stand.agent.manager.currentSvid()!.certChainPem);
  t.true(opensslVerify(stand.dir, { roots: first.bundlePem, leaf: first.certChainPem }).ok);
  for (let i = 0; i < 2; i++) {
    const next = new Promise<string>((resolve) => client.once('update', (ctx) => resolve(ctx.certChainPem)));
    const attempt = await stand.nextAttempt();
    t.true(attempt.ok);
    t.is(await next, stand.agent.manager.currentSvid()!.certChainPem, `rotation ${i + 1} reached the client`);
  }
});

test('JWT-SVIDs: minted by the CA for the agent identity, cached, validated; the JWKS verifies them; bad tokens are INVALID_ARGUMENT', async (t) => {
  const { stand, client } = await standWithWorkloadApi(t);
  await client.ready();
  const svid = await client.fetchJwtSvid(['db', 'broker']);
  t.is(svid.spiffeId, ORDERS);
  const again = await client.fetchJwtSvid(['broker', 'db']);
  t.is(again.token, svid.token, 'the same audiences reuse the cached token while it is fresh');

  const bundles = await client.fetchJwtBundles();
  t.deepEqual(Object.keys(bundles), [`spiffe://${TD}`]);
  const jwks = bundles[`spiffe://${TD}`] as JSONWebKeySet;
  t.is(jwks.keys[0]!.kty, 'EC');
  t.is(decodeProtectedHeader(svid.token).kid, jwks.keys[0]!.kid);
  t.is(decodeProtectedHeader(svid.token).alg, 'ES256');
  // Verified independently of the agent, with the JWKS alone.
  const { payload } = await jwtVerify(svid.token, createLocalJWKSet(jwks), { audience: 'db', currentDate: new Date(stand.clock.now()) });
  t.is(payload.sub, ORDERS);
  t.deepEqual(payload.aud, ['db', 'broker']);
  t.true(payload.exp! - payload.iat! <= 300, 'short-lived');

  const valid = await client.validateJwtSvid(svid.token, 'broker');
  t.is(valid.spiffeId, ORDERS);
  t.deepEqual(valid.claims.aud, ['db', 'broker']);
  t.is(valid.claims.sub, ORDERS);

  const refused = async (token: string, audience: string) => {
    const e = await t.throwsAsync(client.validateJwtSvid(token, audience));
    t.is((e as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT, (e as Error).message);
    return (e as grpc.ServiceError).details;
  };
  t.regex(await refused(svid.token, 'other'), /claim "aud" check failed/);
  const [h, p, s] = svid.token.split('.');
  const forged = Buffer.from(JSON.stringify({ ...payload, sub: `spiffe://${TD}/ns/shop/sa/admin` })).toString('base64url');
  t.regex(await refused(`${h}.${forged}.${s}`, 'db'), /signature does not verify/);
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
  t.regex(await refused(none, 'db'), /not valid/);
});

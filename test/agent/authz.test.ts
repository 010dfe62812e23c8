/**
 * ext_authz through the running agent: Envoy's Check (official protos) over the agent's Unix
 * socket, with the peer certificate Envoy forwards (include_peer_certificate) verified against the
 * trust bundle the agent learned from its CA.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import test from 'ava';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { authzClient, checkRequest, metadataOf } from '../authz/helpers/authz-client.js';
import { FRONTEND, FRONTEND_TOKEN, SHOP_POLICIES, Stand, TD } from './stand.js';

test('ext_authz through the agent: a peer certified by the CA is judged by policy; a certificate from another root is denied', async (t) => {
  const s = await Stand.start(t, { policies: SHOP_POLICIES });
  await s.agent.manager.firstSvid();
  t.deepEqual(JSON.parse((await s.admin('/readyz')).body), { ready: true, checks: { svid: true, sds: true, authz_policies: true }, pid: process.pid });

  // The frontend's own SVID from the same CA, as its sidecar would present it.
  const frontend = await s.issueFor(FRONTEND_TOKEN, FRONTEND);
  const certificate = encodeURIComponent(frontend.chainPem[0]!);
  const client = authzClient(`unix:${s.agent.authz!.socketPath!}`);
  t.teardown(() => client.close());
  const ask = (o: Parameters<typeof checkRequest>[0]) => client.check(checkRequest({ principal: FRONTEND, certificate, ...o }));
  const revision = s.agent.authz!.revision();

  const read = await ask({ method: 'GET', path: '/api/orders?limit=5' });
  t.is(read.status?.code ?? grpcStatus.OK, grpcStatus.OK);
  t.like(metadataOf(read), { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-frontend', rule: 0, revision });

  const admin = await ask({ method: 'DELETE', path: '/admin/users' });
  t.is(admin.status?.code, grpcStatus.PERMISSION_DENIED);
  t.is(admin.denied_response?.status?.code, 'Forbidden');
  t.like(metadataOf(admin), { decision: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-admin' });

  const write = await ask({ method: 'POST', path: '/api/orders' });
  t.is(write.status?.code, grpcStatus.PERMISSION_DENIED);
  t.like(metadataOf(write), { decision: 'deny', reason: 'no_allow_policy_matched', policy: undefined });

  // Same SPIFFE ID, same request, but the certificate chains to a root the agent does not trust.
  const forged = makeLeaf(makeRoot(TD, { commonName: 'another root' }), FRONTEND);
  const stranger = await ask({ method: 'GET', path: '/api/orders', certificate: encodeURIComponent(forged.pem) });
  t.is(stranger.status?.code, grpcStatus.PERMISSION_DENIED);
  t.like(metadataOf(stranger), { decision: 'deny', reason: 'peer_certificate_invalid', policy: undefined });

  // A verified certificate whose identity is not the principal Envoy reports.
  const mismatch = await ask({ method: 'GET', path: '/api/orders', principal: `spiffe://${TD}/ns/shop/sa/intruder` });
  t.is(mismatch.status?.code, grpcStatus.PERMISSION_DENIED);
  t.like(metadataOf(mismatch), { reason: 'peer_principal_mismatch' });

  // The decision log names who decided each request.
  const decisions = s.agentLogs().filter((l) => l.component === 'authz-decision');
  t.deepEqual(
    decisions.map((l) => [l.outcome, l.reason, l.policy ?? null]),
    [
      ['allow', 'allow_policy_matched', 'shop/allow-frontend'],
      ['deny', 'deny_policy_matched', 'shop/deny-admin'],
      ['deny', 'no_allow_policy_matched', null],
      ['deny', 'peer_certificate_invalid', null],
      ['deny', 'peer_principal_mismatch', null],
    ],
  );
});

/**
 * Certificate-bound access tokens end to end, with real processes (issue 10): `meshid ca` issues
 * the frontend's client certificates, `meshid dev token-server` hands the frontend a token bound
 * to one of them (fetched over HTTPS with that certificate), and a `meshid agent` started with
 * the endpoint's jwt-rules.yaml answers Envoy's Check (peer certificate in
 * attributes.source.certificate, as include_peer_certificate sends it): the bound token with its
 * certificate is allowed, the same token with the frontend's other certificate is 401
 * token_not_bound, and an unbound token is denied where the policy requires binding.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import test from 'ava';
import { DevTokenIssuer } from '../../src/demo/dev-issuer.js';
import { authzClient, checkRequest, metadataOf } from '../authz/helpers/authz-client.js';
import { runCli } from '../authz/helpers/cli.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { tempDir } from '../helpers/tmp.js';
import { FRONTEND, FRONTEND_TOKEN, issueFromCa, ordersCaProcess, TD } from './stand.js';

/**
 * Payments take the frontend (mTLS peer) only with a dev-issued token bound to its certificate.
 * The token's sub is a SPIFFE ID, which holds "/": Istio splits a requestPrincipals value at its
 * last "/", so the issuer is matched with "meshid-dev/*" and the client by its peer principal.
 */
const BOUND_POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-bound, namespace: shop }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/ns/shop/sa/frontend"], requestPrincipals: ["meshid-dev/*"] } }]
      to: [{ operation: { paths: ["/api/payments", "/api/payments/*"] } }]
      when: [{ key: request.auth.cnf_bound, values: ["true"] }]
`;

function fetchToken(url: string, ca: string, client: { cert: string; key: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${url}/token`, { method: 'POST', ca, cert: client.cert, key: client.key, agent: false, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(`grant_type=client_credentials&client_id=${encodeURIComponent(FRONTEND)}`);
  });
}

test('a bound token from the dev token endpoint is allowed with its certificate, 401 token_not_bound with another; an unbound one is denied where binding is required', async (t) => {
  const dir = tempDir(t, 'meshid-bound-');
  const { agentCaArgs, policyDir, address, bundlePath } = await ordersCaProcess(t, dir, 'policies');
  fs.writeFileSync(path.join(policyDir, '30-payments-bound.yaml'), BOUND_POLICY);
  const devState = path.join(dir, 'dev');

  const endpoint = new MeshidProcess(['dev', 'token-server', `--bundle=${bundlePath}`, `--trust-domain=${TD}`, '--aud=orders-api', `--state-dir=${devState}`]);
  t.teardown(() => endpoint.stop());
  const ready = await endpoint.waitFor('the token endpoint', (l) => l.event === 'token_endpoint_ready');

  const authzSocket = path.join(dir, 'authz.sock');
  const agent = new MeshidProcess([
    'agent',
    ...agentCaArgs,
    `--sds-socket=${path.join(dir, 'sds.sock')}`,
    `--authz-socket=${authzSocket}`,
    `--policy-dir=${policyDir}`,
    `--jwt-rules=${String(ready.jwtRules)}`,
    '--admin-listen=127.0.0.1:0',
  ]);
  t.teardown(() => agent.stop());

  // The frontend's two certificates from the CA: the one its token is bound to, and its next one.
  const [mine, other] = [await issueFromCa(address, fs.readFileSync(bundlePath, 'utf8'), FRONTEND_TOKEN, FRONTEND), await issueFromCa(address, fs.readFileSync(bundlePath, 'utf8'), FRONTEND_TOKEN, FRONTEND)];
  const got = await fetchToken(String(ready.url), fs.readFileSync(String(ready.servingCertificate), 'utf8'), { cert: mine.chainPem.join(''), key: mine.privateKeyPem });
  t.is(got.status, 200, JSON.stringify(got.body));
  const bound = String(got.body.access_token);
  // An access token of the same issuer and audience without cnf.
  const unbound = await (await DevTokenIssuer.open(devState)).accessToken(FRONTEND, ['orders-api'], 600_000, Date.now());

  await agent.waitFor('ext_authz serving', (l) => l.msg === 'ext_authz serving on Unix socket');
  // Peer certificates verify against the trust bundle that comes with the agent's first SVID.
  await agent.waitFor('the first SVID', (l) => l.msg === 'SVID issued');
  const client = authzClient(`unix:${authzSocket}`);
  t.teardown(() => client.close());
  const ask = (token: string, cert: { chainPem: string[] }, p = '/api/payments/7') =>
    client.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(cert.chainPem[0]!), method: 'GET', path: p, headers: { authorization: `Bearer ${token}` } }));

  const allowed = await ask(bound, mine);
  t.is(allowed.status?.code ?? grpcStatus.OK, grpcStatus.OK, JSON.stringify(metadataOf(allowed)));
  t.like(metadataOf(allowed), { decision: 'allow', policy: 'shop/payments-bound', rule: 0 });

  const stolen = await ask(bound, other);
  t.is(stolen.status?.code, grpcStatus.UNAUTHENTICATED);
  t.is(stolen.denied_response?.status?.code, 'Unauthorized');
  t.like(metadataOf(stolen), { decision: 'deny', reason: 'token_not_bound' });

  const plain = await ask(unbound, mine);
  t.is(plain.status?.code, grpcStatus.PERMISSION_DENIED);
  t.like(metadataOf(plain), { decision: 'deny', reason: 'no_allow_policy_matched' });
  // Where binding is not required the unbound token is an ordinary credential: the shop policy allows the frontend's reads.
  const reads = await ask(unbound, mine, '/api/orders/7');
  t.like(metadataOf(reads), { decision: 'allow', policy: 'shop/allow-frontend' });
  // A token of the same issuer signed with another key.
  const forged = await (await DevTokenIssuer.open(path.join(dir, 'elsewhere'))).accessToken(FRONTEND, ['orders-api'], 600_000, Date.now());
  t.like(metadataOf(await ask(forged, mine)), { decision: 'deny', reason: 'jwt_invalid' });

  // The decision log says what became of each token, and never holds one.
  const decisions = () => agent.lines.filter((l) => l.component === 'authz-decision');
  await agent.waitFor('five decision lines', () => decisions().length === 5);
  const fields = ['reason', 'token_source', 'token_status', 'token_issuer', 'token_subject', 'token_bound'] as const;
  t.deepEqual(
    decisions().map((l) => fields.map((f) => l[f] ?? null)),
    [
      ['allow_policy_matched', 'bearer', 'verified', 'meshid-dev', FRONTEND, true],
      ['token_not_bound', 'bearer', 'not_bound', 'meshid-dev', FRONTEND, false],
      ['no_allow_policy_matched', 'bearer', 'verified', 'meshid-dev', FRONTEND, false],
      ['allow_policy_matched', 'bearer', 'verified', 'meshid-dev', FRONTEND, false],
      ['jwt_invalid', 'bearer', 'invalid', 'meshid-dev', FRONTEND, null],
    ],
  );
  t.regex(String(decisions()[1]!.token_reason), /bound to another certificate/);
  t.regex(String(decisions()[4]!.token_reason), /no key .* matches its "kid"/);
  t.regex(String((decisions()[0]!.headers as Record<string, string>).authorization), /^hmac-sha256:[0-9a-f]{16}$/);
  const logText = agent.lines.map((l) => JSON.stringify(l)).join('\n');
  for (const token of [bound, unbound, forged]) t.false(logText.includes(token.split('.')[2]!), 'no token (or its signature) is logged');

  // Replay reads the new lines: the refused tokens are skipped, the others decided again.
  const log = path.join(dir, 'agent.log');
  fs.writeFileSync(log, `${logText}\n`);
  const same = await runCli(['authz', 'replay', `--policy-dir=${policyDir}`, `--decisions=${log}`]);
  t.is(same.code, 0, same.stdout + same.stderr);
  t.regex(same.stdout, /^3 decisions replayed against [0-9a-f]{12}: 0 changed, 3 unchanged, 0 undecidable; 2 skipped/m);
  // Without the binding condition, the unbound token's payment request would be allowed.
  const candidate = path.join(dir, 'candidate');
  fs.cpSync(policyDir, candidate, { recursive: true });
  fs.writeFileSync(path.join(candidate, '30-payments-bound.yaml'), BOUND_POLICY.replace(/\n\s+when: .*\n/, '\n'));
  const loose = await runCli(['authz', 'replay', `--policy-dir=${candidate}`, `--decisions=${log}`]);
  t.is(loose.code, 1, loose.stdout + loose.stderr);
  t.regex(loose.stdout, /1 changed, 2 unchanged/);
});

/**
 * Request principals from real signed JWTs, both ways (meshid verifying with --jwt-rules, and
 * Envoy's jwt_authn payload in metadata_context), and RFC 8705 certificate binding.
 */
import { createHash, createHmac, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import test from 'ava';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { checkRequestFromJson } from '../../src/authz/check-request-json.js';
import type { CertificateCheck } from '../../src/authz/check-request.js';
import type { CompiledPolicySet } from '../../src/authz/compile.js';
import { decideCheckRequest, decideCheckRequestWithTokens } from '../../src/authz/decide.js';
import { certificateThumbprint, checkTokenBinding } from '../../src/authz/jwt-binding.js';
import { parseJwtRules } from '../../src/authz/jwt-rules.js';
import { RequestAuthenticator } from '../../src/authz/jwt-verify.js';
import { buildPolicySet } from '../../src/authz/policy-set.js';
import { formatIssue } from '../../src/authz/validate.js';
import type { CheckRequest } from '../../src/envoy/protos.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { checkRequest } from './helpers/authz-client.js';
import { compileDescs } from './helpers/policies.js';

const ISS = 'https://issuer.test';
const AUD = 'orders';
const NOW = Date.parse('2026-01-01T00:00:00Z');
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const JWKS = JSON.stringify({ keys: [jwk] });
const root = makeRoot('cluster.local');
const leaf = makeLeaf(root, FRONTEND);
const other = makeLeaf(root, FRONTEND);
const certOf = (pem: string) => encodeURIComponent(pem);
const thumb = (der: Buffer) => createHash('sha256').update(der).digest('base64url');

const unverified: CertificateCheck = () => ({ status: 'unverified', uriSan: FRONTEND });

async function sign(claims: Record<string, unknown>, o: { iss?: string; aud?: string; expSeconds?: number } = {}): Promise<string> {
  const iat = Math.floor(NOW / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? AUD)
    .setSubject('alice')
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.expSeconds ?? 600))
    .sign(privateKey);
}

const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function authenticator(rulesYaml?: string, now = NOW): Promise<RequestAuthenticator> {
  const rules = parseJwtRules(rulesYaml ?? JSON.stringify({ jwtRules: [{ issuer: ISS, audiences: [AUD], jwks: JWKS }] }), 'rules.yaml');
  return RequestAuthenticator.create(rules, { now: () => now });
}

/** ALLOW for request principal ISS/alice; a second policy path needing a certificate-bound token. */
const SET: CompiledPolicySet = compileDescs([
  {
    name: 'users',
    rules: [
      { from: [{ source: { requestPrincipals: [`${ISS}/alice`] } }], to: [{ operation: { paths: ['/api/*'] } }] },
      { to: [{ operation: { paths: ['/bound/*'] } }], when: [{ key: 'request.auth.cnf_bound', values: ['true'] }] },
      { to: [{ operation: { paths: ['/aud/*'] } }], when: [{ key: 'request.auth.audiences', values: [AUD] }, { key: 'request.auth.claims[role]', values: ['admin'] }] },
    ],
  },
]);

const req = (o: { token?: string; path?: string; certificate?: string; headers?: Record<string, string> } = {}): CheckRequest =>
  checkRequest({
    principal: FRONTEND,
    path: o.path ?? '/api/orders',
    headers: { ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}), ...(o.headers ?? {}) },
    ...(o.certificate !== undefined ? { certificate: o.certificate } : {}),
  });

async function decide(a: RequestAuthenticator, r: CheckRequest) {
  return decideCheckRequestWithTokens(SET, r, unverified, { authenticator: a });
}

test('a valid token gives the request principal iss/sub: the requestPrincipals rule allows', async (t) => {
  const o = await decide(await authenticator(), req({ token: await sign({}) }));
  t.true(o.decision.allow, o.decision.detail);
  t.is(o.decision.reason, 'allow_policy_matched');
  t.is(o.token?.principal, `${ISS}/alice`);
  t.is(o.input?.requestAuth?.principal, `${ISS}/alice`);
});

test('missing token: no request principal, so the rule does not match (denied 403, not 401)', async (t) => {
  const o = await decide(await authenticator(), req());
  t.false(o.decision.allow);
  t.is(o.decision.reason, 'no_allow_policy_matched');
  t.is(o.token, undefined);
});

test('expired, wrong issuer, wrong audience, alg none, HS256 keyed with the public key: each is refused jwt_invalid', async (t) => {
  const a = await authenticator();
  const spki = createPublicKey(await exportJWKToPem()).export({ type: 'spki', format: 'pem' });
  const header = (alg: string) => b64u({ alg, typ: 'JWT', kid: 'k1' });
  const body = b64u({ iss: ISS, sub: 'alice', aud: AUD, iat: NOW / 1000, exp: NOW / 1000 + 600 });
  const hs = `${header('HS256')}.${body}`;
  const cases: Array<[string, string, RegExp]> = [
    ['expired', await sign({}, { expSeconds: -120 }), /expired/],
    ['wrong issuer', await sign({}, { iss: 'https://evil.test' }), /issuer "https:\/\/evil.test" is not configured/],
    ['wrong audience', await sign({}, { aud: 'payments' }), /claim "aud"/],
    ['alg none', `${header('none')}.${body}.`, /alg|Unsecured|not allowed/i],
    ['HS256 with the public key as secret', `${hs}.${createHmac('sha256', spki).update(hs).digest('base64url')}`, /not allowed/],
    ['signature of another key', `${(await sign({})).slice(0, -4)}AAAA`, /signature/],
    ['not a JWT', 'abc.def', /not a JWT/],
  ];
  for (const [name, token, why] of cases) {
    const o = await decide(a, req({ token }));
    t.false(o.decision.allow, name);
    t.is(o.decision.reason, 'jwt_invalid', name);
    t.regex(o.decision.detail ?? '', why, name);
    t.is(o.input?.requestAuth, undefined, name);
  }
});

async function exportJWKToPem(): Promise<string> {
  return createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
}

test('an expired token within the 60 s leeway still verifies; past it, it does not', async (t) => {
  const token = await sign({}, { expSeconds: -30 });
  t.true((await decide(await authenticator(), req({ token }))).decision.allow);
  t.is((await decide(await authenticator(undefined, NOW + 60_000), req({ token }))).decision.reason, 'jwt_invalid');
});

test('request.auth.audiences and claims[...] match the verified token', async (t) => {
  const a = await authenticator();
  t.true((await decide(a, req({ path: '/aud/x', token: await sign({ role: 'admin' }) }))).decision.allow);
  t.false((await decide(a, req({ path: '/aud/x', token: await sign({ role: 'user' }) }))).decision.allow);
});

test('fromHeaders with a prefix and fromParams find the token where the rule says', async (t) => {
  const a = await authenticator(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: r, namespace: shop}
spec:
  jwtRules:
  - issuer: ${ISS}
    jwks: '${JWKS}'
    fromHeaders: [{name: X-Jwt, prefix: "Token "}]
    fromParams: [tok]
    outputPayloadToHeader: x-payload
`);
  const token = await sign({});
  t.true((await decide(a, req({ headers: { 'x-jwt': `Token ${token}` } }))).decision.allow);
  t.true((await decide(a, req({ path: `/api/orders?tok=${token}` }))).decision.allow);
  // The default Authorization header is not a location of this rule: no token, no principal.
  t.is((await decide(a, req({ token }))).decision.reason, 'no_allow_policy_matched');
});

test('jwksFile and a jwksUri on loopback (fetched once, cached)', async (t) => {
  const file = path.join(tempDir(t), 'jwks.json');
  fs.writeFileSync(file, JWKS);
  const token = await sign({});
  const fromFile = await authenticator(JSON.stringify([{ issuer: ISS, jwksFile: file }]));
  t.true((await decide(fromFile, req({ token }))).decision.allow);

  let fetches = 0;
  const server = http.createServer((_, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JWKS);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const fromUri = await authenticator(JSON.stringify([{ issuer: ISS, jwksUri: `http://127.0.0.1:${port}/jwks` }]));
  t.true((await decide(fromUri, req({ token }))).decision.allow);
  t.true((await decide(fromUri, req({ token: await sign({ n: 2 }) }))).decision.allow);
  t.is(fetches, 1);
});

test('jwt rules are validated: issuer, one key source, known fields', (t) => {
  const bad = (text: string, re: RegExp) => t.throws(() => parseJwtRules(text, 'r.yaml'), { message: re });
  bad('[{jwks: "{}"}]', /jwtRules\[0\]\.issuer: required/);
  bad(`[{issuer: a}]`, /exactly one of jwks, jwksUri, jwksFile/);
  bad(`[{issuer: a, jwks: x, jwksUri: "http://127.0.0.1/"}]`, /found jwks, jwksUri/);
  bad(`[{issuer: a, jwksUri: "ftp://x"}]`, /http\(s\) URL/);
  bad(`[{issuer: a, jwks: x, audince: [b]}]`, /jwtRules\[0\]\.audince: unknown field/);
  bad(`[{issuer: a, jwks: x}, {issuer: a, jwks: x}]`, /listed twice/);
  bad('kind: RequestAuthentication\nspec: {}', /spec.jwtRules/);
});

test("Envoy's jwt_authn payload in metadata_context gives the request principal (no --jwt-rules)", (t) => {
  const withMeta = (payload: unknown, key = ISS) =>
    checkRequestFromJson({
      attributes: {
        source: { principal: FRONTEND },
        request: { http: { method: 'GET', path: '/api/orders', host: 'orders' } },
        metadataContext: { filterMetadata: { 'envoy.filters.http.jwt_authn': { [key]: payload } } },
      },
    });
  const ok = decideCheckRequest(SET, withMeta({ iss: ISS, sub: 'alice', aud: AUD }), unverified);
  t.true(ok.decision.allow, ok.decision.detail);
  t.is(ok.token?.source, 'jwt_authn');
  t.false(decideCheckRequest(SET, withMeta({ iss: ISS, sub: 'bob' }), unverified).decision.allow);
  // A configured key reads only that entry.
  t.true(decideCheckRequest(SET, withMeta({ iss: ISS, sub: 'alice' }, 'payload'), unverified, { metadataKey: 'payload' }).decision.allow);
  t.false(decideCheckRequest(SET, withMeta({ iss: ISS, sub: 'alice' }, 'other'), unverified, { metadataKey: 'payload' }).decision.allow);
  // No metadata: no request principal.
  t.false(decideCheckRequest(SET, req(), unverified).decision.allow);
});

// ---- RFC 8705 ---------------------------------------------------------------------------------

test('the thumbprint is base64url(SHA-256(DER)) of the peer certificate', (t) => {
  t.is(certificateThumbprint(certOf(leaf.pem)), thumb(leaf.der));
  t.is(certificateThumbprint('not%20a%20cert'), null);
});

test('a token bound to the peer certificate allows the rule needing request.auth.cnf_bound', async (t) => {
  const a = await authenticator();
  const token = await sign({ cnf: { 'x5t#S256': thumb(leaf.der) } });
  const o = await decide(a, req({ path: '/bound/x', token, certificate: certOf(leaf.pem) }));
  t.true(o.decision.allow, o.decision.detail);
  t.deepEqual(o.token?.binding, { expected: thumb(leaf.der), actual: thumb(leaf.der), bound: true });
});

test('bound to another certificate, or no peer certificate: 401 token_not_bound', async (t) => {
  const a = await authenticator();
  const token = await sign({ cnf: { 'x5t#S256': thumb(leaf.der) } });
  const another = await decide(a, req({ path: '/api/x', token, certificate: certOf(other.pem) }));
  t.is(another.decision.reason, 'token_not_bound');
  t.regex(another.decision.detail ?? '', /another certificate/);
  t.is(another.token?.binding?.actual, thumb(other.der));
  const none = await decide(a, req({ path: '/api/x', token }));
  t.is(none.decision.reason, 'token_not_bound');
  t.regex(none.decision.detail ?? '', /without a peer certificate/);
});

test('wrong padding or encoding of the thumbprint is not a match', async (t) => {
  const a = await authenticator();
  const digest = createHash('sha256').update(leaf.der).digest();
  const variants = {
    padded: `${digest.toString('base64url')}=`,
    'standard base64': digest.toString('base64'),
    hex: digest.toString('hex'),
    'SHA-1': createHash('sha1').update(leaf.der).digest('base64url'),
  };
  t.not(variants['standard base64'], digest.toString('base64url'), 'the fixture digest has +, / or padding');
  for (const [name, value] of Object.entries(variants)) {
    const o = await decide(a, req({ path: '/bound/x', token: await sign({ cnf: { 'x5t#S256': value } }), certificate: certOf(leaf.pem) }));
    t.is(o.decision.reason, 'token_not_bound', name);
  }
  t.is(checkTokenBinding({ cnf: { 'x5t#S256': 42 } }, certOf(leaf.pem)).problem, 'the token\'s cnf["x5t#S256"] is not a string');
});

test('a token without cnf is valid but unbound: the binding rule does not match', async (t) => {
  const a = await authenticator();
  const token = await sign({});
  const o = await decide(a, req({ path: '/bound/x', token, certificate: certOf(leaf.pem) }));
  t.false(o.decision.allow);
  t.is(o.decision.reason, 'no_allow_policy_matched');
  t.is(o.token?.binding?.bound, false);
});

test('request.auth.cnf_bound takes "true" or "false" only', (t) => {
  const r = buildPolicySet([
    {
      file: 'p.yaml',
      text: JSON.stringify({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 's' }, spec: { rules: [{ when: [{ key: 'request.auth.cnf_bound', values: ['yes'] }] }] } }),
    },
  ]);
  t.false(r.ok);
  if (!r.ok) t.regex(r.errors.map(formatIssue).join('\n'), /cnf_bound takes "true" or "false"/);
});

test('through the ext_authz server: 401 UNAUTHENTICATED with WWW-Authenticate for jwt_invalid, and counted', async (t) => {
  const { startAuthzService } = await import('../../src/authz/server.js');
  const { FakeClock } = await import('../helpers/fake-clock.js');
  const { authzClient, capturingLogger } = await import('./helpers/authz-client.js');
  const { policyYaml } = await import('./helpers/policies.js');
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'p.yaml'), policyYaml([{ name: 'users', rules: [{ from: [{ source: { requestPrincipals: [`${ISS}/alice`] } }] }] }]));
  const counted: string[] = [];
  const { noopAuthzMetrics } = await import('../../src/authz/metrics.js');
  const clock = new FakeClock(NOW);
  const service = await startAuthzService(
    { listen: { host: '127.0.0.1', port: 0 }, policyDir: dir, resyncMs: 0, jwtRules: parseJwtRules(JSON.stringify([{ issuer: ISS, jwks: JWKS }]), 'r') },
    { logger: capturingLogger().logger, clock, metrics: { ...noopAuthzMetrics, requestToken: (s, st) => counted.push(`${s}:${st}`) } },
  );
  const client = authzClient(`127.0.0.1:${service.tcpPort}`);
  t.teardown(async () => {
    client.close();
    await service.close();
  });
  const ok = await client.check(req({ token: await sign({}) }));
  t.is(ok.status?.code ?? 0, 0);
  const bad = await client.check(req({ token: await sign({}, { expSeconds: -600 }) }));
  t.is(bad.status?.code, 16);
  t.is(bad.status?.message, 'jwt_invalid');
  t.is(bad.denied_response?.status?.code, 'Unauthorized');
  t.true((bad.denied_response?.headers ?? []).some((h) => h.header?.key === 'www-authenticate' && h.header.value === 'Bearer error="invalid_token"'));
  const missing = await client.check(req());
  t.is(missing.denied_response?.status?.code, 'Forbidden');
  t.deepEqual(counted, ['bearer:valid', 'bearer:invalid']);
});

/**
 * The dev token endpoint (RFC 8705): a caller authenticated by its X.509-SVID from the real CA
 * gets a JWT bound to that certificate, which the agent's own token verifier (jwt-verify.ts, with
 * the jwt-rules.yaml the endpoint writes) accepts and the binding check ties to that certificate
 * only. Callers without a certificate, with one from another root, or naming another client_id
 * get RFC 6749 errors; `meshid dev token --bind-cert` mints the same kind of token offline.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { decodeJwt } from 'jose';
import { checkTokenBinding, derThumbprint } from '../../src/authz/jwt-binding.js';
import { parseJwtRules } from '../../src/authz/jwt-rules.js';
import { RequestAuthenticator } from '../../src/authz/jwt-verify.js';
import { DevTokenIssuer } from '../../src/demo/dev-issuer.js';
import { type RunningTokenEndpoint, startTokenEndpoint } from '../../src/demo/token-endpoint.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { silentLogger } from '../../src/observability/logger.js';
import { runCli } from '../authz/helpers/cli.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { FRONTEND, FRONTEND_TOKEN, ORDERS, ORDERS_TOKEN, Stand, TD } from '../agent/stand.js';

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

interface ClientCert {
  readonly cert: string;
  readonly key: string;
}

function request(e: RunningTokenEndpoint, o: { method?: string; path?: string; body?: string; type?: string; client?: ClientCert }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${e.url}${o.path ?? '/token'}`,
      {
        method: o.method ?? 'POST',
        ca: e.servingCertificatePem,
        ...(o.client ? { cert: o.client.cert, key: o.client.key } : {}),
        headers: o.body === undefined ? {} : { 'content-type': o.type ?? 'application/x-www-form-urlencoded' },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

async function setUp(t: ExecutionContext) {
  const s = await Stand.start(t);
  const state = path.join(tempDir(t), 'state');
  const issuer = await DevTokenIssuer.open(state);
  // Its own clock, so that moving it (an expired SVID) leaves the agent and CA alone.
  const endpointClock = new FakeClock(Date.now());
  const rulesFile = issuer.writeJwtRules(['orders-api']);
  const endpoint = await startTokenEndpoint({
    issuer,
    bundlePem: s.ca!.bundlePem,
    trustDomain: TD,
    listen: { host: '127.0.0.1', port: 0 },
    audiences: ['orders-api'],
    ttlMs: 600_000,
    servingCertificateFile: issuer.files.endpointCertificate,
    clock: endpointClock,
    logger: silentLogger(),
  });
  t.teardown(() => endpoint.close());
  const issued = await s.issueFor(FRONTEND_TOKEN, FRONTEND);
  const frontend: ClientCert = { cert: issued.chainPem.join(''), key: issued.privateKeyPem };
  const verifier = await RequestAuthenticator.create(parseJwtRules(fs.readFileSync(rulesFile, 'utf8'), rulesFile), { now: () => s.clock.now() });
  return { s, state, issuer, endpoint, endpointClock, frontend, verifier };
}

test('a caller with its SVID gets a token bound to that certificate, which the agent verifier accepts and binds to that certificate only', async (t) => {
  const { s, endpoint, frontend, verifier } = await setUp(t);
  const r = await request(endpoint, { body: `grant_type=client_credentials&client_id=${encodeURIComponent(FRONTEND)}`, client: frontend });
  t.is(r.status, 200, JSON.stringify(r.body));
  t.is(r.body.token_type, 'Bearer');
  t.is(r.body.expires_in, 600);
  const token = String(r.body.access_token);
  const claims = decodeJwt(token);
  const leafDer = parseCertificatesPem(frontend.cert, 'frontend')[0]!.der;
  t.is(claims.sub, FRONTEND);
  t.is(claims.client_id, FRONTEND);
  t.is(claims.aud, 'orders-api');
  t.deepEqual(claims.cnf, { 'x5t#S256': derThumbprint(leafDer) });
  t.regex(String((claims.cnf as Record<string, string>)['x5t#S256']), /^[A-Za-z0-9_-]{43}$/, 'base64url, unpadded');

  const v = await verifier.verify(token);
  t.is(v.status, 'valid');
  if (v.status !== 'valid') return;
  t.is(v.auth.principal, `meshid-dev/${FRONTEND}`);
  t.true(checkTokenBinding(v.auth.claims, encodeURIComponent(frontend.cert)).bound);
  // The same identity's next certificate (a rotation, or a thief's own SVID) does not match.
  const other = await s.issueFor(FRONTEND_TOKEN, FRONTEND);
  const mismatch = checkTokenBinding(v.auth.claims, encodeURIComponent(other.chainPem[0]!));
  t.false(mismatch.bound);
  t.regex(mismatch.problem ?? '', /another certificate/);

  // Without client_id the certificate alone names the client.
  const bare = await request(endpoint, { body: 'grant_type=client_credentials', client: frontend });
  t.is(bare.status, 200);
  t.is(decodeJwt(String(bare.body.access_token)).sub, FRONTEND);
});

test('refusals: no certificate, another root, another client_id, wrong grant, method and body', async (t) => {
  const { s, endpoint, endpointClock, frontend } = await setUp(t);
  const grant = 'grant_type=client_credentials';
  const none = await request(endpoint, { body: grant });
  t.is(none.status, 401);
  t.is(none.body.error, 'invalid_client');
  t.regex(String(none.body.error_description), /no client certificate/);

  const forged = makeLeaf(makeRoot(TD, { commonName: 'another root' }), FRONTEND);
  const stranger = await request(endpoint, { body: grant, client: { cert: forged.pem, key: forged.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } });
  t.is(stranger.status, 401);
  t.is(stranger.body.error, 'invalid_client');
  t.regex(String(stranger.body.error_description), /does not chain to the mesh trust bundle/);

  const otherId = await request(endpoint, { body: `${grant}&client_id=${encodeURIComponent(ORDERS)}`, client: frontend });
  t.is(otherId.status, 401);
  t.regex(String(otherId.body.error_description), /is not the certificate's SPIFFE ID/);

  const password = await request(endpoint, { body: 'grant_type=password&username=a&password=b', client: frontend });
  t.is(password.status, 400);
  t.is(password.body.error, 'unsupported_grant_type');
  const missing = await request(endpoint, { body: 'client_id=x', client: frontend });
  t.is(missing.body.error, 'invalid_request');
  const twice = await request(endpoint, { body: `${grant}&${grant}`, client: frontend });
  t.is(twice.status, 400);
  t.regex(String(twice.body.error_description), /repeated/);
  const asJson = await request(endpoint, { body: '{"grant_type":"client_credentials"}', type: 'application/json', client: frontend });
  t.is(asJson.status, 400);
  const huge = await request(endpoint, { body: `${grant}&pad=${'x'.repeat(9000)}`, client: frontend });
  t.is(huge.status, 400);
  const get = await request(endpoint, { method: 'GET', client: frontend });
  t.is(get.status, 405);
  const elsewhere = await request(endpoint, { method: 'GET', path: '/admin' });
  t.is(elsewhere.status, 404);

  // The certificate chains to the bundle but is no longer valid at the endpoint's clock.
  const orders = await s.issueFor(ORDERS_TOKEN, ORDERS);
  await endpointClock.advance(2 * 60_000 + 1000);
  const expired = await request(endpoint, { body: grant, client: { cert: orders.chainPem.join(''), key: orders.privateKeyPem } });
  t.is(expired.status, 401);
  t.regex(String(expired.body.error_description), /not a valid X\.509-SVID/);
});

test('GET /jwks serves the issuer JWKS without a client certificate; jwt-rules.yaml names it', async (t) => {
  const { issuer, endpoint } = await setUp(t);
  for (const p of ['/jwks', '/.well-known/jwks.json']) {
    const r = await request(endpoint, { method: 'GET', path: p });
    t.is(r.status, 200);
    t.deepEqual(r.body, JSON.parse(issuer.jwks()) as Record<string, unknown>);
  }
  const rules = parseJwtRules(fs.readFileSync(issuer.files.jwtRules, 'utf8'), 'rules');
  t.deepEqual(rules.map((r) => [r.issuer, r.audiences, r.keys]), [['meshid-dev', ['orders-api'], { kind: 'file', path: issuer.files.jwks }]]);
});

test('meshid dev token --bind-cert mints the same bound token offline, verified by the same rules', async (t) => {
  const { state, frontend, verifier } = await setUp(t);
  const certFile = path.join(path.dirname(state), 'frontend.pem');
  fs.writeFileSync(certFile, frontend.cert);
  const minted = await runCli(['dev', 'token', '--bind-cert', certFile, '--aud', 'orders-api', '--state-dir', state]);
  t.is(minted.code, 0, minted.stderr);
  const out = minted.stdout;
  const v = await verifier.verify(out.trim());
  t.is(v.status, 'valid');
  if (v.status !== 'valid') return;
  t.is(v.auth.principal, `meshid-dev/${FRONTEND}`);
  t.true(checkTokenBinding(v.auth.claims, encodeURIComponent(frontend.cert)).bound);
  t.is(decodeJwt(out.trim()).exp! - decodeJwt(out.trim()).iat!, 600, '10 minutes by default');

  const run = async (args: string[]) => {
    const r = await runCli(['dev', 'token', ...args, '--state-dir', state]);
    return { code: r.code, e: r.stderr };
  };
  const neither = await run([]);
  t.is(neither.code, 2);
  t.regex(neither.e, /--sa NS\/SA .* or --bind-cert/);
  const both = await run(['--sa', 'shop/orders', '--bind-cert', certFile]);
  t.is(both.code, 2);
  const keyFile = path.join(path.dirname(state), 'not-a-cert.pem');
  fs.writeFileSync(keyFile, frontend.key);
  const notCert = await run(['--bind-cert', keyFile]);
  t.is(notCert.code, 2);
});

import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { OID } from '../../src/identity/oids.js';
import { policyDoc } from '../authz/helpers/policies.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture, runCli } from '../authz/helpers/cli.js';

// The shape Envoy sends for an mTLS request from shop/frontend to shop/orders (camelCase JSON).
const EXAMPLE = path.resolve('test', 'fixtures', 'check-request.json');
const example = (): Record<string, unknown> => JSON.parse(fs.readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;

function snakeRequest(opts: { principal?: string; path?: string; method?: string; certificate?: string; tenant?: string }) {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '10.0.0.7', port_value: 40000 } },
        ...(opts.principal !== undefined ? { principal: opts.principal } : {}),
        ...(opts.certificate !== undefined ? { certificate: opts.certificate } : {}),
      },
      destination: { address: { socket_address: { address: '10.0.0.8', port_value: 8080 } } },
      request: {
        time: '2026-01-01T00:00:00.250Z',
        http: {
          id: 'req-1',
          method: opts.method ?? 'GET',
          path: opts.path ?? '/api/v1/orders',
          host: 'orders.shop.svc.cluster.local',
          headers: { 'x-tenant': opts.tenant ?? 'globex', 'X-Upper': 'kept' },
        },
      },
      tls_session: { sni: 'orders.shop.svc.cluster.local' },
      metadata_context: { filter_metadata: { 'envoy.filters.http.jwt_authn': { a: 1, b: [true, null, 'x'] } } },
    },
  };
}

async function check(t: ExecutionContext, request: unknown, dir = fixture('shop')) {
  const file = path.join(tempDir(t), 'req.json');
  fs.writeFileSync(file, JSON.stringify(request));
  const r = await runCli(['authz', 'check', '--policy-dir', dir, '--request', file]);
  return { ...r, json: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

test('the example request (camelCase): allowed by allow-frontend rule 0, audited, dry-run would deny', async (t) => {
  const r = await check(t, example());
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim().split('\n').length, 1, 'one JSON object on one line');
  const j = r.json!;
  t.is(j.decision, 'allow');
  t.is(j.reason, 'allow_policy_matched');
  t.is(j.policy, 'shop/allow-frontend');
  t.is(j.rule, 0);
  t.like(j.matched, { namespace: 'shop', name: 'allow-frontend', file: '20-allow.yml', doc: 1, selector: { app: 'orders' }, dryRun: false });
  t.true(j.audit);
  t.is((j.auditPolicy as { policy: string }).policy, 'shop/audit-writes');
  t.deepEqual(
    { decision: (j.dryRun as Record<string, unknown>).decision, changed: (j.dryRun as Record<string, unknown>).changed, policy: (j.dryRun as Record<string, unknown>).policy },
    { decision: 'deny', changed: true, policy: 'shop/deny-unknown-tenants' },
  );
  t.regex(j.revision as string, /^[0-9a-f]{12}$/);
  t.is(j.principal, 'spiffe://cluster.local/ns/shop/sa/frontend');
});

test('snake_case field names, Struct and Timestamp fields are read too', async (t) => {
  const r = await check(t, snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/frontend' }));
  t.is(r.code, 0, r.stderr);
  t.is(r.json!.decision, 'allow');
  t.is(r.json!.policy, 'shop/allow-frontend');
  t.false(r.json!.audit);
  t.is((r.json!.dryRun as { changed: boolean }).changed, false, 'x-tenant globex is accepted by the dry-run policy');
});

test('deny by a DENY policy names it; default deny names no policy', async (t) => {
  const admin = await check(t, snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/frontend', path: '/admin/users' }));
  t.is(admin.code, 0);
  t.like(admin.json, { decision: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-admin', rule: 0, action: 'DENY' });
  const other = await check(t, snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/backend' }));
  t.is(other.code, 0);
  t.like(other.json, { decision: 'deny', reason: 'no_allow_policy_matched', policy: null, rule: null });
});

test('plaintext is denied by deny-plaintext (notPrincipals ["*"])', async (t) => {
  const r = await check(t, snakeRequest({}));
  t.like(r.json, { decision: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-plaintext', principal: null });
});

test('a peer certificate for another identity than the principal denies', async (t) => {
  const root = makeRoot('cluster.local');
  const leaf = makeLeaf(root, 'spiffe://cluster.local/ns/shop/sa/intruder');
  const r = await check(t, snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/frontend', certificate: encodeURIComponent(leaf.pem) }));
  t.like(r.json, { decision: 'deny', reason: 'peer_principal_mismatch', certificate: 'unverified' });
  const garbage = await check(t, snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/frontend', certificate: '%E0%A4%A' }));
  t.like(garbage.json, { decision: 'deny', reason: 'peer_certificate_invalid', certificate: 'invalid' });
});

test('a request without HTTP attributes is decided: denied as malformed', async (t) => {
  const r = await check(t, { attributes: { source: { principal: 'spiffe://cluster.local/ns/shop/sa/frontend' } } });
  t.is(r.code, 0);
  t.like(r.json, { decision: 'deny', reason: 'malformed_request' });
  t.regex(r.json!.detail as string, /no attributes\.request\.http/);
});

test('an invalid policy set: exit 2, errors on stderr, nothing on stdout', async (t) => {
  const r = await check(t, example(), fixture('invalid'));
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.regex(r.stderr, /error: a\.yaml:10 doc 1 \(allow-frontend\): spec\.rules\[0\]\.from\[0\]\.source\.principals\[1\]/);
  t.regex(r.stderr, /3 errors; no decision made/);
});

test('unreadable input: exit 2 with the reason', async (t) => {
  const missing = await runCli(['authz', 'check', '--policy-dir', fixture('shop'), '--request', path.join(tempDir(t), 'none.json')]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read .*none\.json: ENOENT/);
  const notJson = await check(t, 'not json');
  t.is(notJson.code, 2, 'a JSON string is JSON, but not a CheckRequest');
  t.regex(notJson.stderr, /CheckRequest: expected a JSON object/);
  const bad = path.join(tempDir(t), 'bad.json');
  fs.writeFileSync(bad, '{"attributes": ');
  const syntax = await runCli(['authz', 'check', '--policy-dir', fixture('shop'), '--request', bad]);
  t.is(syntax.code, 2);
  t.regex(syntax.stderr, /JSON/);
  const unknown = await check(t, { attributes: { request: { http: { methd: 'GET' } } } });
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /CheckRequest\.attributes\.request\.http\.methd: unknown field of envoy\.service\.auth\.v3\.AttributeContext\.HttpRequest/);
  const required = await runCli(['authz', 'check', '--request', bad]);
  t.is(required.code, 2);
  t.regex(required.stderr, /policy-dir: required/);
});

test('--bundle verifies the peer certificate: a trusted one decides by policy, a foreign one denies', async (t) => {
  const root = makeRoot('cluster.local');
  const foreign = makeRoot('cluster.local', { commonName: 'foreign root' });
  const dir = tempDir(t);
  const bundle = path.join(dir, 'bundle.pem');
  fs.writeFileSync(bundle, root.pem);
  const run = async (leafPem: string) => {
    const file = path.join(dir, `req-${Math.random()}.json`);
    fs.writeFileSync(file, JSON.stringify(snakeRequest({ principal: 'spiffe://cluster.local/ns/shop/sa/frontend', certificate: encodeURIComponent(leafPem) })));
    const r = await runCli(['authz', 'check', '--policy-dir', fixture('shop'), '--request', file, '--bundle', bundle, '--trust-domain', 'cluster.local']);
    t.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  t.like(await run(makeLeaf(root, 'spiffe://cluster.local/ns/shop/sa/frontend').pem), { decision: 'allow', certificate: 'verified', policy: 'shop/allow-frontend' });
  const denied = await run(makeLeaf(foreign, 'spiffe://cluster.local/ns/shop/sa/frontend').pem);
  t.like(denied, { decision: 'deny', reason: 'peer_certificate_invalid', certificate: 'invalid' });
  t.regex(denied.detail as string, /does not verify/);
  const exampleFile = path.join(dir, 'example.json');
  fs.writeFileSync(exampleFile, JSON.stringify(example()));
  const wrongTd = await runCli(['authz', 'check', '--policy-dir', fixture('shop'), '--request', exampleFile, '--bundle', bundle, '--trust-domain', 'example.org']);
  t.is(wrongTd.code, 2);
  t.regex(wrongTd.stderr, /trust domain/);
});

test('--partner-cas: a partner CA certificate is mapped to <td>/partner/<name> and decided by policy; an unmapped one denies', async (t) => {
  const dir = tempDir(t);
  const ca = makeRoot('cluster.local', { commonName: 'Globex Root CA', sans: [] });
  fs.writeFileSync(path.join(dir, 'globex.pem'), ca.pem);
  fs.writeFileSync(path.join(dir, 'partners.yaml'), 'partners:\n  - {name: globex, bundle: globex.pem, match: [{cn: api-client}]}\n');
  fs.mkdirSync(path.join(dir, 'policies'));
  fs.writeFileSync(path.join(dir, 'policies', 'allow.yaml'), policyDoc({ name: 'allow-globex', action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/partner/globex'] } }] }] }));
  const run = async (cn: string, extra: string[] = []) => {
    const leaf = makeLeaf(ca, undefined, { subject: [{ oid: OID.commonName, value: cn }], sans: [], extKeyUsage: [OID.clientAuth] });
    const file = path.join(dir, `req-${cn}.json`);
    fs.writeFileSync(file, JSON.stringify(snakeRequest({ principal: `CN=${cn}`, certificate: encodeURIComponent(leaf.pem) })));
    return runCli(['authz', 'check', '--policy-dir', path.join(dir, 'policies'), '--request', file, '--partner-cas', path.join(dir, 'partners.yaml'), ...extra]);
  };
  const allowed = await run('api-client');
  t.is(allowed.code, 0, allowed.stderr);
  t.like(JSON.parse(allowed.stdout), { decision: 'allow', certificate: 'mapped', partner: 'globex', policy: 'shop/allow-globex' });
  t.like(JSON.parse((await run('intern')).stdout), { decision: 'deny', reason: 'peer_certificate_unmapped', certificate: 'unmapped', partner: 'globex' });
  fs.writeFileSync(path.join(dir, 'partners.yaml'), 'partners:\n  - {name: globex, bundle: nowhere.pem, match: [{cn: api-client}]}\n');
  const broken = await run('api-client');
  t.is(broken.code, 2);
  t.regex(broken.stderr, /partners\.yaml: partners\[0\] \(globex\)\.bundle: cannot read .*nowhere\.pem/);
});

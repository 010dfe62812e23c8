/**
 * Every field and key Istio supports, matched as the Envoy matcher Istio generates for it matches
 * (pilot/pkg/security/authz/model generator.go, matcher/*.go): request principals and request.auth.*
 * against a RequestAuth built directly, service accounts, trust domains (and aliases), path
 * templates, path normalisation, experimental metadata keys.
 */
import test from 'ava';
import { compilePolicySet } from '../../src/authz/compile.js';
import { evaluate, type Decision } from '../../src/authz/engine.js';
import type { AuthzInput, RequestAuth } from '../../src/authz/facts.js';
import { normalisePath } from '../../src/authz/paths.js';
import { compileDescs, type PolicyDesc } from './helpers/policies.js';

const PEER = 'spiffe://cluster.local/ns/shop/sa/frontend';
const BASE: AuthzInput = { principal: PEER, method: 'GET', host: 'orders.shop', path: '/api/orders', headers: {} };

function jwt(claims: Record<string, unknown>): RequestAuth {
  const iss = String(claims.iss ?? '');
  const sub = String(claims.sub ?? '');
  const aud = claims.aud;
  return {
    principal: `${iss}/${sub}`,
    audiences: Array.isArray(aud) ? (aud as string[]) : typeof aud === 'string' ? [aud] : [],
    ...(typeof claims.azp === 'string' ? { presenter: claims.azp } : {}),
    claims,
  };
}

const TOKEN = jwt({ iss: 'https://issuer.example.com', sub: 'alice', aud: ['orders', 'billing'], azp: 'web', groups: ['admins', 'dev'], tenant: 'acme', nested: { level: { deep: 'x' }, list: ['a', 'b'] }, admin: true });

const allowIf = (rule: unknown, namespace = 'shop'): PolicyDesc[] => [{ name: 'a', namespace, action: 'ALLOW', rules: [rule] }];
const from = (source: unknown) => ({ from: [{ source }] });
const to = (operation: unknown) => ({ to: [{ operation }] });
const when = (...c: unknown[]) => ({ when: c });

type Case = [title: string, policies: PolicyDesc[], request: Partial<AuthzInput>, allowed: boolean];

const cases: Case[] = [
  // requestPrincipals: "<iss>/<sub>", split at the last "/" (issuers are URLs)
  ['requestPrincipals exact', allowIf(from({ requestPrincipals: ['https://issuer.example.com/alice'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals exact, other subject', allowIf(from({ requestPrincipals: ['https://issuer.example.com/bob'] })), { requestAuth: TOKEN }, false],
  ['requestPrincipals "*" needs a token', allowIf(from({ requestPrincipals: ['*'] })), {}, false],
  ['requestPrincipals "*" with a token', allowIf(from({ requestPrincipals: ['*'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals "*" needs a non-empty sub', allowIf(from({ requestPrincipals: ['*'] })), { requestAuth: jwt({ iss: 'i', sub: '' }) }, false],
  ['requestPrincipals issuer/* (any subject of the issuer)', allowIf(from({ requestPrincipals: ['https://issuer.example.com/*'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals issuer/* of another issuer', allowIf(from({ requestPrincipals: ['https://other.example.com/*'] })), { requestAuth: TOKEN }, false],
  ['requestPrincipals */sub (any issuer)', allowIf(from({ requestPrincipals: ['*/alice'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals *suffix/sub', allowIf(from({ requestPrincipals: ['*.example.com/alice'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals sub prefix', allowIf(from({ requestPrincipals: ['https://issuer.example.com/al*'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals without "/" and a trailing *: an issuer prefix, any subject', allowIf(from({ requestPrincipals: ['https*'] })), { requestAuth: TOKEN }, true],
  ['requestPrincipals without "/": the issuer with an empty subject only', allowIf(from({ requestPrincipals: ['issuer'] })), { requestAuth: jwt({ iss: 'issuer', sub: 'alice' }) }, false],
  ['notRequestPrincipals "*" matches a request without a token', allowIf(from({ notRequestPrincipals: ['*'] })), {}, true],
  ['notRequestPrincipals "*" does not match a token', allowIf(from({ notRequestPrincipals: ['*'] })), { requestAuth: TOKEN }, false],
  ['a DENY on notRequestPrincipals "*" denies requests without a token', [{ name: 'd', action: 'DENY', rules: [from({ notRequestPrincipals: ['*'] })] }], {}, false],

  // request.auth.*
  ['request.auth.principal', allowIf(when({ key: 'request.auth.principal', values: ['https://issuer.example.com/alice'] })), { requestAuth: TOKEN }, true],
  ['request.auth.principal without a token', allowIf(when({ key: 'request.auth.principal', values: ['*'] })), {}, false],
  ['request.auth.audiences: one of a list', allowIf(when({ key: 'request.auth.audiences', values: ['billing'] })), { requestAuth: TOKEN }, true],
  ['request.auth.audiences: a string aud', allowIf(when({ key: 'request.auth.audiences', values: ['ord*'] })), { requestAuth: jwt({ iss: 'i', sub: 's', aud: 'orders' }) }, true],
  ['request.auth.audiences: not listed', allowIf(when({ key: 'request.auth.audiences', values: ['shipping'] })), { requestAuth: TOKEN }, false],
  ['request.auth.audiences notValues', allowIf(when({ key: 'request.auth.audiences', notValues: ['billing'] })), { requestAuth: TOKEN }, false],
  ['request.auth.presenter', allowIf(when({ key: 'request.auth.presenter', values: ['web'] })), { requestAuth: TOKEN }, true],
  ['request.auth.presenter absent', allowIf(when({ key: 'request.auth.presenter', values: ['*'] })), { requestAuth: jwt({ iss: 'i', sub: 's' }) }, false],
  ['request.auth.claims[groups]: a list claim', allowIf(when({ key: 'request.auth.claims[groups]', values: ['admins'] })), { requestAuth: TOKEN }, true],
  ['request.auth.claims[tenant]: a string claim', allowIf(when({ key: 'request.auth.claims[tenant]', values: ['ac*'] })), { requestAuth: TOKEN }, true],
  ['request.auth.claims[nested][level][deep]', allowIf(when({ key: 'request.auth.claims[nested][level][deep]', values: ['x'] })), { requestAuth: TOKEN }, true],
  ['request.auth.claims[nested][list]', allowIf(when({ key: 'request.auth.claims[nested][list]', values: ['b'] })), { requestAuth: TOKEN }, true],
  ['request.auth.claims[nested.level]: one claim named "nested.level"', allowIf(when({ key: 'request.auth.claims[nested.level]', values: ['*'] })), { requestAuth: TOKEN }, false],
  ['request.auth.claims: a boolean claim is not a string', allowIf(when({ key: 'request.auth.claims[admin]', values: ['true'] })), { requestAuth: TOKEN }, false],
  ['request.auth.claims: no token, no match', allowIf(when({ key: 'request.auth.claims[groups]', values: ['*'] })), {}, false],
  ['request.auth.claims notValues: no token matches', allowIf(when({ key: 'request.auth.claims[groups]', notValues: ['admins'] })), {}, true],

  // serviceAccounts: spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?
  ['serviceAccounts ns/sa', allowIf(from({ serviceAccounts: ['shop/frontend'] })), {}, true],
  ['serviceAccounts sa alone takes the policy namespace', allowIf(from({ serviceAccounts: ['frontend'] })), {}, true],
  ['serviceAccounts sa alone, policy in another namespace', allowIf(from({ serviceAccounts: ['frontend'] }), 'other'), {}, false],
  ['serviceAccounts do not match a longer name', allowIf(from({ serviceAccounts: ['shop/front'] })), {}, false],
  ['serviceAccounts match extra path segments after the name', allowIf(from({ serviceAccounts: ['shop/frontend'] })), { principal: `${PEER}/v2` }, true],
  ['serviceAccounts do not match plaintext', allowIf(from({ serviceAccounts: ['shop/frontend'] })), { principal: '' }, false],
  ['notServiceAccounts', allowIf(from({ notServiceAccounts: ['shop/frontend'] })), {}, false],
  ['source.serviceAccount', allowIf(when({ key: 'source.serviceAccount', values: ['shop/frontend'] })), {}, true],

  // trustDomains
  ['trustDomains exact', allowIf(from({ trustDomains: ['cluster.local'] })), {}, true],
  ['trustDomains exact is not a prefix of the domain', allowIf(from({ trustDomains: ['cluster.loc'] })), {}, false],
  ['trustDomains presence', allowIf(from({ trustDomains: ['*'] })), {}, true],
  ['trustDomains prefix', allowIf(from({ trustDomains: ['cluster.*'] })), {}, true],
  ['trustDomains suffix stays in the domain', allowIf(from({ trustDomains: ['*.local'] })), {}, true],
  ['trustDomains suffix of another domain', allowIf(from({ trustDomains: ['*.example'] })), {}, false],
  ['notTrustDomains', allowIf(from({ notTrustDomains: ['cluster.local'] })), {}, false],
  ['source.trustDomain', allowIf(when({ key: 'source.trustDomain', values: ['cluster.local'] })), {}, true],

  // principals: Istio's StringMatcherWithPrefix
  ['principals suffix needs the spiffe:// head', allowIf(from({ principals: ['*frontend'] })), { principal: 'frontend' }, false],
  ['principals literal star', allowIf(from({ principals: ['*/sa/front*'] })), {}, false],
  ['principals literal star matches itself', allowIf(from({ principals: ['*/sa/front*'] })), { principal: 'spiffe://cluster.local/ns/shop/sa/front*' }, true],

  // path templates
  ['{*} matches one segment', allowIf(to({ paths: ['/api/{*}'] })), {}, true],
  ['{*} does not match two segments', allowIf(to({ paths: ['/api/{*}'] })), { path: '/api/orders/1' }, false],
  ['{*} does not match an empty segment', allowIf(to({ paths: ['/api/{*}'] })), { path: '/api/' }, false],
  ['{**} matches several segments', allowIf(to({ paths: ['/api/{**}'] })), { path: '/api/orders/1/items' }, true],
  ['{**} matches nothing after the slash', allowIf(to({ paths: ['/api/{**}'] })), { path: '/api/' }, true],
  ['{*} then {**}', allowIf(to({ paths: ['/{*}/orders/{**}'] })), { path: '/v1/orders/7' }, true],
  ['template literal segments are exact', allowIf(to({ paths: ['/{*}/orders'] })), { path: '/v1/order' }, false],
  ['template ignores the query', allowIf(to({ paths: ['/api/{*}'] })), { path: '/api/orders?x=1' }, true],
  ['notPaths template', allowIf(to({ notPaths: ['/api/{**}'] })), {}, false],

  // path normalisation: the path Envoy routes
  ['ALLOW /public* does not allow /public/../private', allowIf(to({ paths: ['/public*'] })), { path: '/public/../private' }, false],
  ['ALLOW /public* does not allow /public/%2e%2e/private', allowIf(to({ paths: ['/public*'] })), { path: '/public/%2e%2e/private' }, false],
  ['ALLOW /public* does not allow /public/%2E%2E/private', allowIf(to({ paths: ['/public*'] })), { path: '/public/%2E%2E/private' }, false],
  ['DENY /admin holds for //admin', [{ name: 'd', action: 'DENY', rules: [to({ paths: ['/admin'] })] }], { path: '//admin' }, false],
  ['DENY /admin holds for /%61dmin', [{ name: 'd', action: 'DENY', rules: [to({ paths: ['/admin'] })] }], { path: '/%61dmin' }, false],
  ['DENY /admin holds for /x/../admin/.', [{ name: 'd', action: 'DENY', rules: [to({ paths: ['/admin/'] })] }], { path: '/x/../admin/.' }, false],
  ['an escaped slash is denied by default', allowIf({}), { path: '/public%2Fx' }, false],
  ['an escaped backslash is denied by default', allowIf({}), { path: '/public%5cx' }, false],
  ['a raw backslash is denied by default', allowIf({}), { path: '/public\\x' }, false],

  // experimental.envoy.filters.*: Envoy dynamic metadata
  ['experimental string value', allowIf(when({ key: 'experimental.envoy.filters.http.lua[tier]', values: ['gold'] })), { metadata: { 'envoy.filters.http.lua': { tier: 'gold' } } }, true],
  ['experimental list value "[v]"', allowIf(when({ key: 'experimental.envoy.filters.http.lua[tags]', values: ['[b*]'] })), { metadata: { 'envoy.filters.http.lua': { tags: ['a', 'beta'] } } }, true],
  ['experimental, metadata absent', allowIf(when({ key: 'experimental.envoy.filters.http.lua[tier]', values: ['*'] })), {}, false],
];

const summary = (d: Decision) => d.allow;

for (const [title, policies, request, allowed] of cases) {
  test(`fields: ${title}`, (t) => {
    const set = compileDescs(policies);
    const d = evaluate(set, { ...BASE, ...request });
    t.is(summary(d), allowed, `${d.reason}${d.detail ? `: ${d.detail}` : ''}`);
    // Indexing never changes a decision.
    t.is(evaluate(compileDescs(policies, { index: false }), { ...BASE, ...request }).allow, allowed);
  });
}

test('escaped slashes: deny by default with a reason; "unescape" and "keep" as configured', (t) => {
  const policies: PolicyDesc[] = [{ name: 'd', action: 'DENY', rules: [to({ paths: ['/private*'] })] }];
  const base = compileDescs(policies);
  const d = evaluate(base, { ...BASE, path: '/public/..%2Fprivate' });
  t.false(d.allow);
  t.is(d.reason, 'bad_path');
  t.regex(d.detail ?? '', /escaped slash/);
  const unescape = compilePolicySet(base.policies, base.revision, { escapedSlashes: 'unescape' });
  t.like(evaluate(unescape, { ...BASE, path: '/public/..%2Fprivate' }), { allow: false, reason: 'deny_policy_matched' });
  const keep = compilePolicySet(base.policies, base.revision, { escapedSlashes: 'keep' });
  t.like(evaluate(keep, { ...BASE, path: '/public/..%2Fprivate' }), { allow: true, reason: 'no_allow_policies' });
});

test('path normalisation as Envoy does it: dot segments, unreserved decoding, merged slashes', (t) => {
  const cases: Array<[string, string]> = [
    ['/a/b', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/../a', '/a'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['//a///b', '/a/b'],
    ['/%61%62%63', '/abc'],
    ['/%7e%2D%2e%5F', '/~-._'],
    ['/a%20b', '/a%20b'],
    ['/a%3fb', '/a%3Fb'],
    ['/%2e%2e/x', '/x'],
    ['/a/%2e/b', '/a/b'],
    ['/a//../b', '/a/b'],
    ['*', '*'],
  ];
  for (const [input, expected] of cases) t.deepEqual(normalisePath(input, 'reject'), { ok: true, path: expected }, input);
  t.deepEqual(normalisePath('/a%2Fb/../c', 'unescape'), { ok: true, path: '/a/c' });
  t.deepEqual(normalisePath('/a\\..\\c', 'keep'), { ok: true, path: '/c' });
  t.deepEqual(normalisePath('/a%2Fb', 'keep'), { ok: true, path: '/a%2Fb' });
  t.false(normalisePath('/a%2fb', 'reject').ok);
});

test('trust-domain aliases: cluster.local and aliases stand for the local trust domain, as in Istio', (t) => {
  const set = compileDescs(allowIf(from({ principals: ['cluster.local/ns/shop/sa/frontend'] })));
  const withTd = compilePolicySet(set.policies, set.revision, { trustDomain: 'new.td', trustDomainAliases: ['old.td'] });
  t.true(evaluate(withTd, { ...BASE, principal: 'spiffe://new.td/ns/shop/sa/frontend' }).allow);
  t.true(evaluate(withTd, { ...BASE, principal: 'spiffe://old.td/ns/shop/sa/frontend' }).allow);
  t.false(evaluate(withTd, { ...BASE, principal: 'spiffe://other.td/ns/shop/sa/frontend' }).allow);
  t.false(evaluate(set, { ...BASE, principal: 'spiffe://new.td/ns/shop/sa/frontend' }).allow, 'without a bundle values match as written');
  const td = compileDescs(allowIf(from({ trustDomains: ['old.td'] })));
  const tdAliased = compilePolicySet(td.policies, td.revision, { trustDomain: 'new.td', trustDomainAliases: ['old.td'] });
  t.true(evaluate(tdAliased, { ...BASE, principal: 'spiffe://new.td/ns/shop/sa/frontend' }).allow);
});

test('the Envoy bootstrap normalises paths as meshid does and rejects escaped slashes, matching the default', async (t) => {
  const fs = await import('node:fs');
  const YAML = await import('yaml');
  const doc = YAML.parse(fs.readFileSync('deploy/envoy/envoy.yaml', 'utf8'), { merge: true }) as {
    static_resources: { listeners: Array<{ name: string; filter_chains: Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }> }> };
  };
  const inbound = doc.static_resources.listeners.find((l) => l.name === 'inbound_mtls');
  const hcm = inbound?.filter_chains[0]?.filters[0]?.typed_config;
  t.like(hcm, { normalize_path: true, merge_slashes: true, path_with_escaped_slashes_action: 'REJECT_REQUEST' });
  // meshid's default agrees: a path Envoy would reject is denied, not decided on.
  t.is(compileDescs([]).needs.escapedSlashes, 'reject');
});

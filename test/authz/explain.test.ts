import test from 'ava';
import { ruleParts } from '../../src/authz/compile.js';
import { evaluate } from '../../src/authz/engine.js';
import { nearMissText } from '../../src/authz/explain.js';
import { type AuthzInput, RequestFacts } from '../../src/authz/facts.js';
import { compileDescs, type PolicyDesc } from './helpers/policies.js';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const REQ: AuthzInput = { principal: FRONTEND, method: 'POST', host: 'orders.shop', path: '/api/v1/orders', headers: { 'x-env': 'prod' } };

const allow = (name: string, rules?: readonly unknown[]): PolicyDesc => ({ name, action: 'ALLOW', ...(rules ? { rules } : {}) });
const rule = (source: unknown, operation: unknown, when?: unknown[]) => ({
  ...(source ? { from: [{ source }] } : {}),
  ...(operation ? { to: [{ operation }] } : {}),
  ...(when ? { when } : {}),
});
const SHOP = { principals: ['cluster.local/ns/shop/sa/frontend'] };

type Case = [title: string, policies: PolicyDesc[], request: Partial<AuthzInput>, expected: string[] | undefined];

const cases: Case[] = [
  ['path near miss', [allow('allow-shop', [rule(SHOP, { methods: ['POST'], paths: ['/api/orders*'] })])], {}, ['shop/allow-shop rule 0: path /api/v1/orders is not /api/orders*']],
  ['method near miss', [allow('allow-shop', [rule(SHOP, { methods: ['GET', 'HEAD'], paths: ['/api/v1/*'] })])], {}, ['shop/allow-shop rule 0: method POST is not GET or HEAD']],
  [
    'principal near miss',
    [allow('allow-backend', [rule({ principals: ['cluster.local/ns/shop/sa/backend'] }, { paths: ['/api/v1/orders'] })])],
    {},
    ['shop/allow-backend rule 0: principal spiffe://cluster.local/ns/shop/sa/frontend is not cluster.local/ns/shop/sa/backend'],
  ],
  ['no principal (plaintext)', [allow('a', [rule(SHOP, undefined)])], { principal: '' }, ['shop/a rule 0: no principal (the rule wants cluster.local/ns/shop/sa/frontend)']],
  [
    'several candidates: most conditions met first, at most three',
    [
      allow('far', [rule({ principals: ['x.td/ns/a/sa/b'] }, { methods: ['GET'], paths: ['/x'] })]),
      allow('near', [rule(SHOP, { methods: ['POST'], paths: ['/api/v2/*'] }), rule(SHOP, { methods: ['GET'] })]),
      allow('header', [rule(SHOP, { methods: ['POST'] }, [{ key: 'request.headers[x-env]', values: ['staging'] }])]),
      allow('negated', [rule(undefined, { notMethods: ['POST'] })]),
    ],
    {},
    [
      'shop/near rule 0: path /api/v1/orders is not /api/v2/*',
      'shop/header rule 0: request.headers[x-env] prod is not staging',
      'shop/near rule 1: method POST is not GET',
    ],
  ],
  ['negation', [allow('a', [rule(undefined, { notPaths: ['/api/*'] })])], {}, ['shop/a rule 0: path /api/v1/orders is excluded by notPaths /api/*']],
  ['two operations: one part', [allow('a', [{ to: [{ operation: { methods: ['GET'] } }, { operation: { paths: ['/x'] } }] }])], {}, ['shop/a rule 0: none of the 2 operations in "to" matches']],
  ['no ALLOW policies at all: allowed, nothing to explain', [{ name: 'd', action: 'DENY', rules: [rule(undefined, { paths: ['/admin'] })] }], {}, undefined],
  ['ALLOW policy without rules: explained as such', [allow('nothing')], {}, []],
  [
    'request principal whose subject holds a "/": the same text does not match (Istio splits at the last "/"), and the explanation says so',
    [allow('a', [rule({ requestPrincipals: ['meshid-dev/spiffe://td/ns/a/sa/b'] }, undefined)])],
    { requestAuth: { principal: 'meshid-dev/spiffe://td/ns/a/sa/b', audiences: [], claims: { iss: 'meshid-dev', sub: 'spiffe://td/ns/a/sa/b' } } },
    [
      'shop/a rule 0: request principal meshid-dev/spiffe://td/ns/a/sa/b is not matched by the same text: Istio splits the value at its last "/" into issuer and subject, so a subject containing "/" needs a "*" pattern (e.g. meshid-dev/*)',
    ],
  ],
  ['an allow carries no explanation', [allow('a', [rule(SHOP, undefined)])], {}, undefined],
];

for (const [title, policies, request, expected] of cases) {
  test(`default deny: ${title}`, (t) => {
    const d = evaluate(compileDescs(policies), { ...REQ, ...request });
    t.deepEqual(d.nearest?.map(nearMissText), expected);
    if (expected === undefined) {
      t.not(d.reason, 'no_allow_policy_matched');
      return;
    }
    t.is(d.reason, 'no_allow_policy_matched');
    t.false(d.allow);
    t.is(d.detail, expected.length === 0 ? 'no ALLOW rule to match: the ALLOW policy has no rules' : `nearest ALLOW rule${expected.length === 1 ? '' : 's'}: ${expected.join('; ')}`);
  });
}

test('a DENY match is not explained as a default deny', (t) => {
  const set = compileDescs([{ name: 'd', action: 'DENY', rules: [{}] }, allow('a', [rule(undefined, { paths: ['/x'] })])]);
  const d = evaluate(set, REQ);
  t.is(d.reason, 'deny_policy_matched');
  t.is(d.nearest, undefined);
});

test('the parts of a rule match exactly when its compiled predicate does', (t) => {
  const set = compileDescs([
    allow('a', [
      rule(SHOP, { methods: ['POST'], paths: ['/api/v1/*'] }),
      rule({ namespaces: ['shop'], notPrincipals: ['*/sa/admin'] }, { hosts: ['ORDERS.shop'] }, [{ key: 'request.headers[x-env]', notValues: ['dev'] }]),
      rule({ namespaces: ['other'] }, { ports: ['80'] }),
      rule(undefined, { paths: ['/api/{*}/orders'] }),
      { from: [{ source: { namespaces: ['x'] } }, { source: { principals: ['*'] } }] },
    ]),
  ]);
  const requests: Partial<AuthzInput>[] = [{}, { method: 'GET' }, { principal: '' }, { host: 'nope' }, { headers: { 'x-env': 'dev' } }, { path: '/api/x/orders' }];
  let checked = 0;
  for (const r of requests) {
    const f = new RequestFacts({ ...REQ, ...r }, r.principal ?? REQ.principal, set.needs);
    for (const c of set.allow.all) {
      t.is(ruleParts(c.source, c.ref.policy.namespace).every((p) => p.test(f)), c.match(f), `${JSON.stringify(r)} rule ${c.ref.rule}`);
      checked++;
    }
  }
  t.is(checked, requests.length * 5);
});

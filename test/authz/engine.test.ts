import test from 'ava';
import { evaluate, type Decision } from '../../src/authz/engine.js';
import type { AuthzInput } from '../../src/authz/facts.js';
import { compileDescs, type PolicyDesc } from './helpers/policies.js';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

const BASE: AuthzInput = {
  principal: FRONTEND,
  method: 'GET',
  host: 'orders.shop.svc.cluster.local',
  path: '/api/v1/orders?dry=1',
  sourceIp: '10.1.2.3',
  destinationIp: '10.9.9.9',
  destinationPort: 8080,
  headers: { 'x-tenant': 'acme', 'content-type': 'application/json' },
  sni: 'orders.shop.svc.cluster.local',
};

const allow = (name: string, rules?: readonly unknown[]): PolicyDesc => ({ name, action: 'ALLOW', ...(rules ? { rules } : {}) });
const deny = (name: string, rules?: readonly unknown[]): PolicyDesc => ({ name, action: 'DENY', ...(rules ? { rules } : {}) });
const audit = (name: string, rules?: readonly unknown[]): PolicyDesc => ({ name, action: 'AUDIT', ...(rules ? { rules } : {}) });
const from = (source: unknown) => ({ from: [{ source }] });
const to = (operation: unknown) => ({ to: [{ operation }] });
const when = (...c: unknown[]) => ({ when: c });
/** An ALLOW policy with one rule; the request is allowed iff that rule matches. */
const allowIf = (rule: unknown) => [allow('a', [rule])];

/** What a decision says, compactly: "allow", "deny", plus "@policy#rule" when a rule decided. */
function summary(d: Decision): string {
  return `${d.allow ? 'allow' : 'deny'}:${d.reason}${d.rule ? `@${d.rule.policy.id}#${d.rule.rule}` : ''}`;
}

type Case = [title: string, policies: PolicyDesc[], request: Partial<AuthzInput>, expected: string];

const cases: Case[] = [
  // Order and defaults
  ['no policies: allow', [], {}, 'allow:no_allow_policies'],
  ['ALLOW policy without rules allows nothing', [allow('a')], {}, 'deny:no_allow_policy_matched'],
  ['rule {} always matches', [allow('a', [{}])], {}, 'allow:allow_policy_matched@shop/a#0'],
  ['DENY rule {} denies everything', [deny('d', [{}])], {}, 'deny:deny_policy_matched@shop/d#0'],
  ['DENY wins over a matching ALLOW', [allow('a', [{}]), deny('d', [{}])], {}, 'deny:deny_policy_matched@shop/d#0'],
  ['a DENY that does not match leaves ALLOW to decide', [deny('d', [to({ paths: ['/admin'] })]), allow('a', [{}])], {}, 'allow:allow_policy_matched@shop/a#0'],
  ['ALLOW policies present, none matches: deny', [allow('a', [to({ paths: ['/other'] })]), allow('b', [to({ methods: ['POST'] })])], {}, 'deny:no_allow_policy_matched'],
  ['AUDIT alone never denies', [audit('au', [{}])], {}, 'allow:no_allow_policies'],
  ['AUDIT never allows', [audit('au', [{}]), allow('a')], {}, 'deny:no_allow_policy_matched'],
  ['rules are ORed: the second rule decides', [allow('a', [to({ paths: ['/x'] }), to({ methods: ['GET'] })])], {}, 'allow:allow_policy_matched@shop/a#1'],
  ['the first matching policy in load order is reported', [allow('a', [to({ paths: ['/x'] })]), allow('b', [{}]), allow('c', [{}])], {}, 'allow:allow_policy_matched@shop/b#0'],

  // AND / OR structure
  ['from and to are ANDed (to fails)', allowIf({ ...from({ principals: ['cluster.local/ns/shop/sa/frontend'] }), ...to({ methods: ['POST'] }) }), {}, 'deny:no_allow_policy_matched'],
  ['from and to are ANDed (both hold)', allowIf({ ...from({ principals: ['cluster.local/ns/shop/sa/frontend'] }), ...to({ methods: ['GET'] }) }), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['from, to and when are ANDed (when fails)', allowIf({ ...from({ namespaces: ['shop'] }), ...to({ methods: ['GET'] }), ...when({ key: 'request.headers[x-tenant]', values: ['globex'] }) }), {}, 'deny:no_allow_policy_matched'],
  ['every when must hold', allowIf(when({ key: 'request.headers[x-tenant]', values: ['acme'] }, { key: 'destination.port', values: ['9090'] })), {}, 'deny:no_allow_policy_matched'],
  ['fields within a source are ANDed', allowIf(from({ principals: ['cluster.local/ns/shop/sa/frontend'], namespaces: ['other'] })), {}, 'deny:no_allow_policy_matched'],
  ['fields within an operation are ANDed', allowIf(to({ methods: ['GET'], paths: ['/nope'] })), {}, 'deny:no_allow_policy_matched'],
  ['values of one field are ORed', allowIf(to({ methods: ['POST', 'GET'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['several from entries are ORed', allowIf({ from: [{ source: { namespaces: ['x'] } }, { source: { namespaces: ['shop'] } }] }), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['several to entries are ORed', allowIf({ to: [{ operation: { methods: ['PUT'] } }, { operation: { paths: ['/api/*'] } }] }), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['notX negates the OR of its values (one value hits)', allowIf(to({ notMethods: ['POST', 'GET'] })), {}, 'deny:no_allow_policy_matched'],
  ['notX negates the OR of its values (none hits)', allowIf(to({ notMethods: ['POST', 'PUT'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['X and notX together', allowIf(to({ paths: ['/api/*'], notPaths: ['/api/v1/*'] })), {}, 'deny:no_allow_policy_matched'],

  // Principals
  ['principal exact: written without spiffe://', allowIf(from({ principals: ['cluster.local/ns/shop/sa/frontend'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['principal exact: other principal', allowIf(from({ principals: ['cluster.local/ns/shop/sa/backend'] })), {}, 'deny:no_allow_policy_matched'],
  ['principal prefix', allowIf(from({ principals: ['cluster.local/ns/shop/*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['principal prefix of another trust domain', allowIf(from({ principals: ['other.td/ns/shop/*'] })), {}, 'deny:no_allow_policy_matched'],
  ['principal suffix', allowIf(from({ principals: ['*/sa/frontend'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['principal presence matches any mTLS peer', allowIf(from({ principals: ['*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['principal presence does not match plaintext', allowIf(from({ principals: ['*'] })), { principal: '' }, 'deny:no_allow_policy_matched'],
  ['principal exact does not match plaintext', allowIf(from({ principals: ['cluster.local/ns/shop/sa/frontend'] })), { principal: undefined }, 'deny:no_allow_policy_matched'],
  ['plaintext matches notPrincipals (Istio trap)', allowIf(from({ notPrincipals: ['cluster.local/ns/evil/sa/x'] })), { principal: '' }, 'allow:allow_policy_matched@shop/a#0'],
  ['plaintext matches notPrincipals ["*"]', [deny('d', [from({ notPrincipals: ['*'] })])], { principal: '' }, 'deny:deny_policy_matched@shop/d#0'],
  ['mTLS does not match notPrincipals ["*"]', [deny('d', [from({ notPrincipals: ['*'] })])], {}, 'allow:no_allow_policies'],
  ['principal is case-sensitive', allowIf(from({ principals: ['cluster.local/ns/shop/sa/Frontend'] })), {}, 'deny:no_allow_policy_matched'],

  // Namespaces
  ['namespace exact matches the /ns/<ns>/ segment', allowIf(from({ namespaces: ['shop'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace other', allowIf(from({ namespaces: ['sho'] })), {}, 'deny:no_allow_policy_matched'],
  ['namespace prefix', allowIf(from({ namespaces: ['sh*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace suffix', allowIf(from({ namespaces: ['*op'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace presence', allowIf(from({ namespaces: ['*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace globs are Istio\'s regex .*/ns/<glob>/.*, which may span segments', allowIf(from({ namespaces: ['shop/sa*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace glob in the middle', allowIf(from({ namespaces: ['s*p'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['namespace needs the segment to be followed by more path', allowIf(from({ namespaces: ['shop'] })), { principal: 'spiffe://cluster.local/ns/shop' }, 'deny:no_allow_policy_matched'],
  ['namespace does not match a principal without /ns/', allowIf(from({ namespaces: ['*'] })), { principal: 'spiffe://cluster.local/workload/x' }, 'deny:no_allow_policy_matched'],
  ['plaintext does not match namespaces', allowIf(from({ namespaces: ['shop'] })), { principal: '' }, 'deny:no_allow_policy_matched'],
  ['plaintext matches notNamespaces (Istio trap)', allowIf(from({ notNamespaces: ['evil'] })), { principal: '' }, 'allow:allow_policy_matched@shop/a#0'],
  ['notNamespaces excludes the namespace', allowIf(from({ notNamespaces: ['shop'] })), {}, 'deny:no_allow_policy_matched'],

  // IP blocks
  ['ipBlocks CIDR', allowIf(from({ ipBlocks: ['10.0.0.0/8'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['ipBlocks single address', allowIf(from({ ipBlocks: ['10.1.2.3'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['ipBlocks other block', allowIf(from({ ipBlocks: ['10.1.3.0/24'] })), {}, 'deny:no_allow_policy_matched'],
  ['ipBlocks /0 matches any IPv4', allowIf(from({ ipBlocks: ['0.0.0.0/0'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['ipBlocks IPv4 block does not match IPv6', allowIf(from({ ipBlocks: ['0.0.0.0/0'] })), { sourceIp: '2001:db8::1' }, 'deny:no_allow_policy_matched'],
  ['ipBlocks IPv6 block', allowIf(from({ ipBlocks: ['2001:db8::/32'] })), { sourceIp: '2001:db8:0:1::7' }, 'allow:allow_policy_matched@shop/a#0'],
  ['ipBlocks IPv6 other', allowIf(from({ ipBlocks: ['2001:db8::/32'] })), { sourceIp: '2001:db9::1' }, 'deny:no_allow_policy_matched'],
  ['ipBlocks IPv4 block matches an IPv4-mapped peer', allowIf(from({ ipBlocks: ['10.0.0.0/8'] })), { sourceIp: '::ffff:10.1.2.3' }, 'allow:allow_policy_matched@shop/a#0'],
  ['a DENY on an IPv4 block cannot be bypassed through a mapped address', [deny('d', [from({ ipBlocks: ['10.0.0.0/8'] })])], { sourceIp: '::ffff:a01:203' }, 'deny:deny_policy_matched@shop/d#0'],
  ['notIpBlocks', allowIf(from({ notIpBlocks: ['10.0.0.0/8'] })), {}, 'deny:no_allow_policy_matched'],
  ['ipBlocks with no source address does not match', allowIf(from({ ipBlocks: ['0.0.0.0/0'] })), { sourceIp: undefined }, 'deny:no_allow_policy_matched'],
  ['remoteIpBlocks use the peer address Envoy reports (X-Forwarded-For is not trusted)', allowIf(from({ remoteIpBlocks: ['192.0.2.0/24'] })), { headers: { 'x-forwarded-for': '192.0.2.9' } }, 'deny:no_allow_policy_matched'],
  ['remoteIpBlocks match the peer address', allowIf(from({ remoteIpBlocks: ['10.1.0.0/16'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['notRemoteIpBlocks', allowIf(from({ notRemoteIpBlocks: ['10.1.0.0/16'] })), {}, 'deny:no_allow_policy_matched'],

  // Hosts
  ['host exact', allowIf(to({ hosts: ['orders.shop.svc.cluster.local'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['host is case-insensitive (value)', allowIf(to({ hosts: ['Orders.Shop.svc.cluster.local'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['host is case-insensitive (request)', allowIf(to({ hosts: ['orders.shop.svc.cluster.local'] })), { host: 'ORDERS.shop.svc.cluster.local' }, 'allow:allow_policy_matched@shop/a#0'],
  ['host without port does not match an authority with a port (Istio compares the whole authority)', allowIf(to({ hosts: ['orders.shop.svc.cluster.local'] })), { host: 'orders.shop.svc.cluster.local:8080' }, 'deny:no_allow_policy_matched'],
  ['a DENY on a host alone is bypassed by a port, as in Istio (policy lint warns)', [deny('d', [to({ hosts: ['admin.example.com'] })])], { host: 'Admin.Example.com:443' }, 'allow:no_allow_policies'],
  ['a DENY listing host and host:* holds for every port', [deny('d', [to({ hosts: ['admin.example.com', 'admin.example.com:*'] })])], { host: 'Admin.Example.com:443' }, 'deny:deny_policy_matched@shop/d#0'],
  ['host:* is a prefix match: it does not match the bare host', allowIf(to({ hosts: ['admin.example.com:*'] })), { host: 'admin.example.com' }, 'deny:no_allow_policy_matched'],
  ['a trailing dot is another host to Istio', allowIf(to({ hosts: ['admin.example.com'] })), { host: 'admin.example.com.' }, 'deny:no_allow_policy_matched'],
  ['an authority with two ports is denied before any policy', [allow('a', [{}])], { host: 'admin.example.com:443:443' }, 'deny:bad_authority'],
  ['an authority with user information is denied', [allow('a', [{}])], { host: 'user@admin.example.com' }, 'deny:bad_authority'],
  ['an authority with a non-numeric port is denied', [allow('a', [{}])], { host: 'admin.shop.local:abc' }, 'deny:bad_authority'],
  ['a bracketed name that is not IPv6 is denied', [allow('a', [{}])], { host: '[admin.shop.local]' }, 'deny:bad_authority'],
  ['an authority with spaces is denied', [allow('a', [{}])], { host: ' admin.shop.local' }, 'deny:bad_authority'],
  ['host with port matches only that port', allowIf(to({ hosts: ['orders.shop.svc.cluster.local:9090'] })), { host: 'orders.shop.svc.cluster.local:8080' }, 'deny:no_allow_policy_matched'],
  ['host with port, same port', allowIf(to({ hosts: ['orders.shop.svc.cluster.local:8080'] })), { host: 'orders.shop.svc.cluster.local:8080' }, 'allow:allow_policy_matched@shop/a#0'],
  ['host suffix', allowIf(to({ hosts: ['*.svc.cluster.local'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['host prefix', allowIf(to({ hosts: ['orders.*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['host presence, host absent', allowIf(to({ hosts: ['*'] })), { host: undefined }, 'deny:no_allow_policy_matched'],
  ['notHosts', allowIf(to({ notHosts: ['*.cluster.local'] })), {}, 'deny:no_allow_policy_matched'],
  ['IPv6 literal authority', allowIf(to({ hosts: ['[::1]:8080'] })), { host: '[::1]:8080' }, 'allow:allow_policy_matched@shop/a#0'],

  // Methods, paths, ports
  ['method is case-sensitive', allowIf(to({ methods: ['get'] })), {}, 'deny:no_allow_policy_matched'],
  ['method prefix', allowIf(to({ methods: ['G*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['path exact ignores the query string', allowIf(to({ paths: ['/api/v1/orders'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['path exact ignores the fragment', allowIf(to({ paths: ['/api/v1/orders'] })), { path: '/api/v1/orders#frag' }, 'allow:allow_policy_matched@shop/a#0'],
  ['path is case-sensitive', allowIf(to({ paths: ['/API/v1/orders'] })), {}, 'deny:no_allow_policy_matched'],
  ['path prefix', allowIf(to({ paths: ['/api/*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['path prefix is a plain prefix, not a segment match', allowIf(to({ paths: ['/api/v1/order*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['path suffix', allowIf(to({ paths: ['*/orders'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['path suffix does not see the query', allowIf(to({ paths: ['*dry=1'] })), {}, 'deny:no_allow_policy_matched'],
  ['path presence', allowIf(to({ paths: ['*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['notPaths with prefix', allowIf(to({ notPaths: ['/api/*'] })), {}, 'deny:no_allow_policy_matched'],
  ['ports match the destination port', allowIf(to({ ports: ['8080'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['ports other', allowIf(to({ ports: ['9090', '80'] })), {}, 'deny:no_allow_policy_matched'],
  ['notPorts', allowIf(to({ notPorts: ['8080'] })), {}, 'deny:no_allow_policy_matched'],
  ['ports without a destination port do not match', allowIf(to({ ports: ['8080'] })), { destinationPort: undefined }, 'deny:no_allow_policy_matched'],

  // when
  ['header exact', allowIf(when({ key: 'request.headers[x-tenant]', values: ['acme'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['header name in the key is case-insensitive', allowIf(when({ key: 'request.headers[X-Tenant]', values: ['acme'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['header value is case-sensitive', allowIf(when({ key: 'request.headers[x-tenant]', values: ['ACME'] })), {}, 'deny:no_allow_policy_matched'],
  ['header prefix', allowIf(when({ key: 'request.headers[content-type]', values: ['application/*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['header presence', allowIf(when({ key: 'request.headers[x-tenant]', values: ['*'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['header presence, header absent', allowIf(when({ key: 'request.headers[x-missing]', values: ['*'] })), {}, 'deny:no_allow_policy_matched'],
  ['header notValues match an absent header', allowIf(when({ key: 'request.headers[x-missing]', notValues: ['x'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['header values and notValues together', allowIf(when({ key: 'request.headers[x-tenant]', values: ['a*'], notValues: ['acme'] })), {}, 'deny:no_allow_policy_matched'],
  ['pseudo-header', allowIf(when({ key: 'request.headers[:method]', values: ['GET'] })), { headers: { ':method': 'GET' } }, 'allow:allow_policy_matched@shop/a#0'],
  ['source.ip', allowIf(when({ key: 'source.ip', values: ['10.1.2.0/24'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['remote.ip', allowIf(when({ key: 'remote.ip', notValues: ['10.1.2.3'] })), {}, 'deny:no_allow_policy_matched'],
  ['destination.ip', allowIf(when({ key: 'destination.ip', values: ['10.9.9.9'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['destination.ip other', allowIf(when({ key: 'destination.ip', values: ['10.9.9.8/32'] })), {}, 'deny:no_allow_policy_matched'],
  ['destination.port', allowIf(when({ key: 'destination.port', values: ['8080'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['destination.port notValues', allowIf(when({ key: 'destination.port', notValues: ['8080'] })), {}, 'deny:no_allow_policy_matched'],
  ['connection.sni is case-sensitive, as Istio generates it', allowIf(when({ key: 'connection.sni', values: ['*.SHOP.svc.cluster.local'] })), {}, 'deny:no_allow_policy_matched'],
  ['connection.sni suffix', allowIf(when({ key: 'connection.sni', values: ['*.shop.svc.cluster.local'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['connection.sni absent', allowIf(when({ key: 'connection.sni', values: ['*'] })), { sni: undefined }, 'deny:no_allow_policy_matched'],
  ['source.namespace', allowIf(when({ key: 'source.namespace', values: ['shop'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['source.namespace notValues match plaintext', allowIf(when({ key: 'source.namespace', notValues: ['shop'] })), { principal: '' }, 'allow:allow_policy_matched@shop/a#0'],
  ['source.principal (without spiffe://)', allowIf(when({ key: 'source.principal', values: ['cluster.local/ns/shop/sa/frontend'] })), {}, 'allow:allow_policy_matched@shop/a#0'],
  ['source.principal other', allowIf(when({ key: 'source.principal', values: ['cluster.local/ns/shop/sa/x'] })), {}, 'deny:no_allow_policy_matched'],

  // Peer certificate
  ['an invalid peer certificate denies before any policy', [allow('a', [{}])], { peerCertificate: { status: 'invalid', reason: 'expired' } }, 'deny:peer_certificate_invalid'],
  ['a verified certificate for another identity denies', [allow('a', [{}])], { peerCertificate: { status: 'verified', spiffeId: 'spiffe://cluster.local/ns/x/sa/y' } }, 'deny:peer_principal_mismatch'],
  ['an unverified certificate whose URI SAN differs denies', [allow('a', [{}])], { peerCertificate: { status: 'unverified', uriSan: 'spiffe://cluster.local/ns/x/sa/y' } }, 'deny:peer_principal_mismatch'],
  ['a verified certificate supplies the principal when Envoy sent none', allowIf(from({ principals: ['cluster.local/ns/shop/sa/frontend'] })), { principal: '', peerCertificate: { status: 'verified', spiffeId: FRONTEND } }, 'allow:allow_policy_matched@shop/a#0'],
  ['an unverified certificate never supplies the principal', allowIf(from({ principals: ['*'] })), { principal: '', peerCertificate: { status: 'unverified', uriSan: FRONTEND } }, 'deny:no_allow_policy_matched'],
];

for (const [title, policies, request, expected] of cases) {
  test(`semantics: ${title}`, (t) => {
    const input = { ...BASE, ...request };
    const indexed = evaluate(compileDescs(policies), input);
    t.is(summary(indexed), expected);
    // The index never changes an answer: the same policies scanned linearly agree.
    t.is(summary(evaluate(compileDescs(policies, { index: false }), input)), expected);
  });
}

test('the decision names the deciding policy, rule, action, origin and revision', (t) => {
  const set = compileDescs([allow('a', [to({ paths: ['/x'] }), from({ namespaces: ['shop'] })])]);
  const d = evaluate(set, BASE);
  t.true(d.allow);
  t.is(d.rule?.policy.name, 'a');
  t.is(d.rule?.policy.namespace, 'shop');
  t.is(d.rule?.rule, 1);
  t.is(d.rule?.action, 'ALLOW');
  t.is(d.rule?.policy.origin.file, 'test.yaml');
  t.is(d.revision, set.revision);
  t.regex(d.revision, /^[0-9a-f]{12}$/);
});

test('AUDIT matches are reported whatever the outcome, first match in order', (t) => {
  const policies = [audit('au1', [to({ methods: ['POST'] })]), audit('au2', [to({ methods: ['GET'] })]), audit('au3', [{}])];
  const d = evaluate(compileDescs([...policies, deny('d', [{}])]), BASE);
  t.false(d.allow);
  t.is(d.audit?.policy.id, 'shop/au2');
  t.is(d.audit?.action, 'AUDIT');
  const a = evaluate(compileDescs(policies), BASE);
  t.true(a.allow);
  t.is(a.audit?.policy.id, 'shop/au2');
  t.is(evaluate(compileDescs([audit('au', [to({ methods: ['POST'] })])]), BASE).audit, undefined);
});

test('dry-run DENY: reported, not enforced', (t) => {
  const set = compileDescs([{ ...deny('try-deny', [to({ paths: ['/api/*'] })]), dryRun: true }, allow('a', [{}])]);
  const d = evaluate(set, BASE);
  t.true(d.allow);
  t.is(d.reason, 'allow_policy_matched');
  t.deepEqual(
    { allow: d.dryRun?.allow, reason: d.dryRun?.reason, changed: d.dryRun?.changed, policy: d.dryRun?.rule?.policy.id, dry: d.dryRun?.rule?.dryRun },
    { allow: false, reason: 'deny_policy_matched', changed: true, policy: 'shop/try-deny', dry: true },
  );
});

test('dry-run ALLOW: its presence would turn on default deny, reported only', (t) => {
  const set = compileDescs([{ ...allow('try-allow', [to({ paths: ['/other'] })]), dryRun: true }]);
  const d = evaluate(set, BASE);
  t.true(d.allow);
  t.is(d.reason, 'no_allow_policies');
  t.is(d.dryRun?.allow, false);
  t.is(d.dryRun?.reason, 'no_allow_policy_matched');
  t.true(d.dryRun?.changed);
  const matching = evaluate(set, { ...BASE, path: '/other' });
  t.is(matching.dryRun?.allow, true);
  t.is(matching.dryRun?.rule?.policy.id, 'shop/try-allow');
  t.false(matching.dryRun?.changed);
});

test('dry-run that agrees with the enforced outcome', (t) => {
  const set = compileDescs([deny('d', [to({ paths: ['/api/*'] })]), { ...deny('try', [{}]), dryRun: true }]);
  const d = evaluate(set, BASE);
  t.false(d.allow);
  t.is(d.rule?.policy.id, 'shop/d');
  t.is(d.dryRun?.allow, false);
  t.false(d.dryRun?.changed);
  t.is(d.dryRun?.rule?.policy.id, 'shop/d', 'the enforced DENY comes first in load order');
});

test('no dry-run policies: no dry-run outcome', (t) => {
  t.is(evaluate(compileDescs([allow('a', [{}])]), BASE).dryRun, undefined);
});

test('first-match order holds between indexed and scanned rules', (t) => {
  const scanned = allow('scanned', [to({ methods: ['GET'] })]); // no exact guard: scanned
  const indexed = allow('indexed', [from({ principals: ['cluster.local/ns/shop/sa/frontend'] })]); // filed under the principal
  t.is(evaluate(compileDescs([scanned, indexed]), BASE).rule?.policy.name, 'scanned');
  t.is(evaluate(compileDescs([indexed, scanned]), BASE).rule?.policy.name, 'indexed');
  const byPath = allow('by-path', [to({ paths: ['/api/v1/orders'] })]);
  const byHost = allow('by-host', [to({ hosts: ['orders.shop.svc.cluster.local'] })]);
  const byNs = allow('by-ns', [from({ namespaces: ['shop'] })]);
  for (const order of [[byPath, byHost, byNs, indexed], [byNs, byHost, indexed, byPath], [byHost, indexed, byPath, byNs]]) {
    t.is(evaluate(compileDescs(order), BASE).rule?.policy.name, order[0]!.name);
  }
});

test('10,000 rules over distinct principals and paths: the right rule decides', (t) => {
  const rules = Array.from({ length: 10_000 }, (_, i) => ({
    ...from({ principals: [`cluster.local/ns/ns${i % 100}/sa/sa${i}`] }),
    ...to({ paths: [`/api/${i}`, `/api/${i}/*`] }),
  }));
  // At most 512 rules per policy (Istio's CRD): 20 policies of 500.
  const set = compileDescs(Array.from({ length: 20 }, (_, p) => allow(`big-${p}`, rules.slice(p * 500, (p + 1) * 500))));
  t.is(set.allow.scan.length, 0, 'every rule is indexed');
  const d = evaluate(set, { ...BASE, principal: 'spiffe://cluster.local/ns/ns99/sa/sa9999', path: '/api/9999/x' });
  t.is(d.rule?.policy.name, 'big-19');
  t.is(d.rule?.rule, 499);
  t.false(evaluate(set, { ...BASE, principal: 'spiffe://cluster.local/ns/ns99/sa/sa9999', path: '/api/9998' }).allow);
});

test('randomised: indexed and linear evaluation agree', (t) => {
  // A small deterministic generator, so a failure reproduces.
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const principals = ['cluster.local/ns/a/sa/x', 'cluster.local/ns/b/sa/y', 'cluster.local/ns/a/*', '*/sa/y', '*'];
  const paths = ['/a', '/b', '/a/*', '*.js', '*'];
  const hosts = ['h1.example.com', 'h2.example.com:8080', '*.example.com'];
  const namespaces = ['a', 'b', 'c*'];
  const pick = <T>(xs: readonly T[]) => xs[rnd(xs.length)]!;
  const rule = () => {
    const r: Record<string, unknown> = {};
    if (rnd(2)) r.from = [{ source: rnd(2) ? { principals: [pick(principals), pick(principals)] } : { namespaces: [pick(namespaces)], ...(rnd(2) ? { notPrincipals: [pick(principals)] } : {}) } }];
    if (rnd(2)) r.to = [{ operation: rnd(2) ? { paths: [pick(paths)] } : { hosts: [pick(hosts)], ...(rnd(2) ? { methods: ['GET'] } : {}) } }];
    if (rnd(4) === 0) r.when = [{ key: 'source.principal', values: [pick(principals)] }];
    return r;
  };
  const policies: PolicyDesc[] = Array.from({ length: 40 }, (_, i) => ({
    name: `p${i}`,
    action: pick(['ALLOW', 'ALLOW', 'DENY', 'AUDIT'] as const),
    dryRun: rnd(6) === 0,
    rules: Array.from({ length: 1 + rnd(3) }, rule),
  }));
  const indexed = compileDescs(policies);
  const linear = compileDescs(policies, { index: false });
  const full = (d: Decision) => JSON.stringify([summary(d), d.audit?.policy.id, d.audit?.rule, d.dryRun && [d.dryRun.allow, d.dryRun.rule?.policy.id, d.dryRun.rule?.rule, d.dryRun.audit?.policy.id]]);
  for (let i = 0; i < 2000; i++) {
    const input: AuthzInput = {
      ...BASE,
      principal: pick(['', 'spiffe://cluster.local/ns/a/sa/x', 'spiffe://cluster.local/ns/b/sa/y', 'spiffe://cluster.local/ns/c1/sa/z']),
      path: pick(['/a', '/b', '/a/1', '/x.js?q', '/']),
      host: pick(['h1.example.com', 'H1.example.com:80', 'h2.example.com:8080', 'other']),
      method: pick(['GET', 'POST']),
    };
    t.is(full(evaluate(indexed, input)), full(evaluate(linear, input)), JSON.stringify(input));
  }
});

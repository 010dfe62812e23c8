/** Unit tables for the small pure pieces: patterns, CIDRs, host handling, response encoding, lint, options. */
import test from 'ava';
import { cidrContains, parseCidr, parseIp } from '../../src/lib/ip.js';
import { encodeCheckResponse } from '../../src/authz/check-response.js';
import { evaluate, denyDecision } from '../../src/authz/engine.js';
import { authorityProblem, namespacesOf } from '../../src/authz/facts.js';
import { lintPolicies } from '../../src/authz/lint.js';
import { authzOptionSpecs } from '../../src/authz/options.js';
import { parsePattern } from '../../src/authz/patterns.js';
import { authzServiceConfig } from '../../src/authz/server.js';
import { parsePolicyFile } from '../../src/authz/validate.js';
import { loadConfig } from '../../src/config/load.js';
import { envoyProtos } from '../../src/envoy/protos.js';
import { TO_OBJECT_OPTIONS } from '../../src/lib/proto-services.js';
import { compileDescs, policyYaml, type PolicyDesc } from './helpers/policies.js';

test('patterns: exact, prefix, suffix, presence; other stars are literal, as Istio reads them', (t) => {
  t.deepEqual(parsePattern('*'), { kind: 'presence' });
  t.deepEqual(parsePattern('abc*'), { kind: 'prefix', value: 'abc' });
  t.deepEqual(parsePattern('*abc'), { kind: 'suffix', value: 'abc' });
  t.deepEqual(parsePattern('abc'), { kind: 'exact', value: 'abc' });
  t.deepEqual(parsePattern('a*c'), { kind: 'exact', value: 'a*c' });
  t.deepEqual(parsePattern('**'), { kind: 'suffix', value: '*' });
  t.deepEqual(parsePattern('*/productpage*'), { kind: 'suffix', value: '/productpage*' });
  t.deepEqual(parsePattern('a**'), { kind: 'prefix', value: 'a*' });
});

const ipCases: Array<[string, string, boolean]> = [
  ['10.0.0.0/8', '10.255.1.2', true],
  ['10.0.0.0/8', '11.0.0.1', false],
  ['10.0.0.1', '10.0.0.1', true],
  ['10.0.0.1', '10.0.0.2', false],
  ['0.0.0.0/0', '203.0.113.9', true],
  ['192.168.1.0/31', '192.168.1.1', true],
  ['192.168.1.0/31', '192.168.1.2', false],
  ['2001:db8::/32', '2001:db8:ffff::1', true],
  ['2001:db8::/32', '2001:db9::1', false],
  ['::/0', '::1', true],
  ['::/0', '10.0.0.1', false],
  ['fe80::1:2:3:4/128', 'fe80:0:0:0:1:2:3:4', true],
  ['2001:db8::/127', '2001:db8::1', true],
  ['2001:db8:0:0:8000::/65', '2001:db8::8000:0:0:1', true],
  ['2001:db8:0:0:8000::/65', '2001:db8::7fff:0:0:1', false],
  ['::ffff:10.0.0.0/104', '10.1.1.1', true],
  ['10.0.0.0/8', '::ffff:10.1.1.1', true],
  ['10.0.0.0/8', '::ffff:a01:101', true],
];
for (const [block, ip, inside] of ipCases) {
  test(`cidr: ${ip} ${inside ? 'in' : 'not in'} ${block}`, (t) => {
    const b = parseCidr(block);
    const a = parseIp(ip);
    if ('error' in b || !a) return t.fail(`unparsed: ${block} ${ip}`);
    t.is(cidrContains(b, a), inside);
  });
}

test('cidr: malformed input refused; host bits noticed', (t) => {
  for (const bad of ['10.0.0', '10.0.0.0/', '10.0.0.0/33', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1::2::3', '::1/129', 'fe80::1%eth0', '1.2.3.4::', 'g::1', '', '::ffff:1.2.3.4/95']) {
    t.true('error' in parseCidr(bad), bad);
  }
  const loose = parseCidr('10.0.0.1/8');
  t.true(!('error' in loose) && loose.hostBitsSet);
  const tight = parseCidr('10.0.0.0/8');
  t.true(!('error' in tight) && !tight.hostBitsSet);
});

test('authority: host[:port] forms parse; the forms another parser could read differently do not', (t) => {
  for (const ok of ['example.com', 'example.com:8080', 'EXAMPLE.com', '10.0.0.1:80', '[::1]', '[::1]:443', 'example.com.', 'a-b_c~d']) {
    t.is(authorityProblem(ok), undefined, ok);
  }
  for (const bad of ['admin.shop.local:abc', 'host:443:443', '[host]', '[host]:80', 'user@host', ' host', 'host ', 'ho st', 'host:', ':80', '[::1', '[::1]x', 'host:65536', 'host:99999', 'ho/st', 'h\tab']) {
    t.truthy(authorityProblem(bad), bad);
  }
});

test('namespaces: every /ns/<ns>/ segment of the principal', (t) => {
  t.deepEqual(namespacesOf('spiffe://td/ns/shop/sa/x'), ['shop']);
  t.deepEqual(namespacesOf('spiffe://td/ns/shop'), []);
  t.deepEqual(namespacesOf('spiffe://td/ns/ns/foo/x'), ['ns', 'foo']);
  t.deepEqual(namespacesOf('spiffe://td/workload'), []);
});

test('response encoding: long fields (lengths over 127 bytes) decode with Envoy\'s protos', (t) => {
  const long = 'p'.repeat(240);
  const set = compileDescs([{ name: long, action: 'DENY', rules: [{}] }]);
  const d = evaluate(set, { principal: 'spiffe://td/ns/a/sa/b', method: 'GET', path: '/' });
  const bytes = encodeCheckResponse(d, 'decision-1', { denyDetails: true });
  const { CheckResponse } = envoyProtos();
  const r = CheckResponse.toObject(CheckResponse.decode(bytes), TO_OBJECT_OPTIONS) as {
    status: { code: number; message: string };
    denied_response: { status: { code: string }; body: string };
    dynamic_metadata: { fields: Record<string, { stringValue?: string; numberValue?: number }> };
  };
  t.is(r.status.code, 7);
  t.is(r.denied_response.status.code, 'Forbidden');
  t.is(r.denied_response.body, `access denied: deny_policy_matched; policy shop/${long} rule 0; decision decision-1\n`);
  t.is(r.dynamic_metadata.fields.policy?.stringValue, `shop/${long}`);
  t.is(r.dynamic_metadata.fields.rule?.numberValue, 0);
  const huge = encodeCheckResponse(denyDecision('malformed_request', 'x'.repeat(5000)), 'd', { denyDetails: true });
  t.is((CheckResponse.toObject(CheckResponse.decode(huge), TO_OBJECT_OPTIONS) as typeof r).dynamic_metadata.fields.revision?.stringValue, 'x'.repeat(5000));
});

function lintOf(policies: PolicyDesc[]) {
  const r = parsePolicyFile('p.yaml', policyYaml(policies));
  t0(r.errors.length === 0);
  return lintPolicies(r.policies).map((w) => `${w.code} ${w.policy} ${w.path}`);
}
function t0(ok: boolean): void {
  if (!ok) throw new Error('fixture invalid');
}

test('lint: the plaintext trap in ALLOW and DENY, suppressed by a deny-plaintext rule; never-matching policies; host bits; paths', (t) => {
  t.deepEqual(lintOf([{ name: 'a', action: 'ALLOW', rules: [{ from: [{ source: { notPrincipals: ['x/y'] } }] }] }]), ['plaintext_match a spec.rules[0].from[0].source.notPrincipals']);
  t.deepEqual(lintOf([{ name: 'a', action: 'ALLOW', rules: [{ from: [{ source: { principals: ['*'], notNamespaces: ['x'] } }] }] }]), [], 'the positive field requires mTLS');
  t.deepEqual(lintOf([{ name: 'd', action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bad'] } }] }] }]), ['plaintext_match d spec.rules[0].from[0].source.namespaces']);
  t.deepEqual(
    lintOf([
      { name: 'd', action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bad'] } }] }] },
      { name: 'no-plaintext', action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] },
    ]),
    [],
  );
  t.deepEqual(lintOf([{ name: 'w', action: 'ALLOW', rules: [{ when: [{ key: 'source.namespace', notValues: ['x'] }] }] }]), ['plaintext_match w spec.rules[0].when[0].notValues']);
  t.deepEqual(lintOf([{ name: 'au', action: 'AUDIT' }, { name: 'al', action: 'ALLOW' }]), ['never_matches au spec.rules']);
  t.deepEqual(lintOf([{ name: 'c', action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['10.1.0.0/8'] } }], to: [{ operation: { paths: ['api/*'], methods: ['Get'] } }] }] }]), [
    'cidr_host_bits c spec.rules[0].from[0].source.ipBlocks[0]',
    'method_case c spec.rules[0].to[0].operation.methods[0]',
    'path_not_absolute c spec.rules[0].to[0].operation.paths[0]',
  ]);
});

test('lint: values Istio accepts but that rarely mean what they say, and the host-port bypass', (t) => {
  t.deepEqual(lintOf([{ name: 's', action: 'ALLOW', rules: [{ from: [{ source: { principals: ['spiffe://td/ns/a/sa/b'] } }] }] }]), ['principal_spiffe_prefix s spec.rules[0].from[0].source.principals[0]']);
  t.deepEqual(lintOf([{ name: 'w', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/api/*/x', '*/productpage*'] } }] }] }]), [
    'literal_wildcard w spec.rules[0].to[0].operation.paths[0]',
    'literal_wildcard w spec.rules[0].to[0].operation.paths[1]',
  ]);
  t.deepEqual(lintOf([{ name: 'e', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/a'], methods: [] } }] }] }]), ['empty_list e spec.rules[0].to[0].operation.methods']);
  t.deepEqual(lintOf([{ name: 'h', action: 'DENY', rules: [{ to: [{ operation: { hosts: ['admin.example.com'] } }] }] }]), ['host_port h spec.rules[0].to[0].operation.hosts']);
  t.deepEqual(lintOf([{ name: 'h', action: 'DENY', rules: [{ to: [{ operation: { hosts: ['admin.example.com', 'admin.example.com:*'] } }] }] }]), [], 'host and host:* both listed');
  t.deepEqual(lintOf([{ name: 'n', action: 'ALLOW', rules: [{ to: [{ operation: { notHosts: ['admin.example.com'] } }] }] }]), ['host_port n spec.rules[0].to[0].operation.notHosts']);
  t.deepEqual(lintOf([{ name: 'sni', action: 'DENY', rules: [{ when: [{ key: 'connection.sni', values: ['admin.example.com'] }] }] }]), ['sni_case sni spec.rules[0].when[0].key']);
  t.deepEqual(lintOf([{ name: 'tpl', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/a/{*}/b/{**}'] } }] }] }]), [], 'templates are not literal stars');
});

test('agent options: flags, environment and defaults; service config needs a policy directory', (t) => {
  const loaded = loadConfig(authzOptionSpecs, {
    argv: ['--authz-socket', '/run/meshid/authz.sock', '--authz-listen', '127.0.0.1:15090', '--policy-dir', '/etc/meshid/policies', '--authz-deny-details=false'],
    env: { MESHID_AUTHZ_DECISION_LOG_SAMPLE: '0.25' },
  });
  t.like(loaded.config, { authzSocket: '/run/meshid/authz.sock', authzListen: { host: '127.0.0.1', port: 15090 }, policyDir: '/etc/meshid/policies', authzDecisionLogSample: 0.25, authzDenyDetails: false, policyReloadDebounce: 200, policyResync: 30_000 });
  t.deepEqual(authzServiceConfig(loaded.config), {
    socket: '/run/meshid/authz.sock',
    socketMode: 0o600,
    listen: { host: '127.0.0.1', port: 15090 },
    policyDir: '/etc/meshid/policies',
    decisionLogSample: 0.25,
    denyDetails: false,
    reloadDebounceMs: 200,
    resyncMs: 30_000,
    rateLimit: { maxKeys: 100_000 },
    escapedSlashes: 'reject',
  });
  const shared = loadConfig(authzOptionSpecs, {
    argv: ['--authz-socket', '/a.sock', '--policy-dir', '/p', '--rate-limit-redis', 'redis://10.0.0.5:6379/1', '--rate-limit-redis-fallback', 'closed'],
  });
  t.deepEqual(authzServiceConfig(shared.config)?.rateLimit, { maxKeys: 100_000, redis: { url: 'redis://10.0.0.5:6379/1', timeoutMs: 50, fallback: 'closed' } });
  t.throws(() => loadConfig(authzOptionSpecs, { argv: ['--rate-limit-redis', 'localhost:6379'] }), { message: /rate-limit-redis.*unsupported scheme localhost:/ });
  t.is(authzServiceConfig(loadConfig(authzOptionSpecs, { argv: [] }).config), undefined, 'ext_authz off without a listener');
  t.throws(() => authzServiceConfig(loadConfig(authzOptionSpecs, { argv: ['--authz-socket', '/x.sock'] }).config), { message: /--policy-dir is required/ });
  t.throws(() => loadConfig(authzOptionSpecs, { argv: ['--authz-decision-log-sample', '2'] }), { message: /at most 1/ });
});

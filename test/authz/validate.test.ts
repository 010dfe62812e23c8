import test from 'ava';
import { formatIssue, parsePolicyFile, parsePolicyFiles, type PolicyIssue } from '../../src/authz/validate.js';

const API = 'security.istio.io/v1';

/** One policy document as JSON (valid YAML), with overrides. */
function doc(spec: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec, ...extra });
}

function errorsOf(text: string): PolicyIssue[] {
  return [...parsePolicyFile('a.yaml', text).errors];
}

const src = (source: unknown) => ({ rules: [{ from: [{ source }] }] });
const op = (operation: unknown) => ({ rules: [{ to: [{ operation }] }] });
const when = (...conditions: unknown[]) => ({ rules: [{ when: conditions }] });

/** [title, document text, expected error code, expected field path] */
const invalid: Array<[string, string, string, string | undefined]> = [
  ['unknown top-level field', doc({}, { specs: {} }), 'unknown_field', 'specs'],
  ['unknown spec field', doc({ rule: [] }), 'unknown_field', 'spec.rule'],
  ['unknown rule field', doc({ rules: [{ form: [] }] }), 'unknown_field', 'spec.rules[0].form'],
  ['unknown source field', doc(src({ principal: ['a/b'] })), 'unknown_field', 'spec.rules[0].from[0].source.principal'],
  ['unknown operation field', doc(op({ method: ['GET'] })), 'unknown_field', 'spec.rules[0].to[0].operation.method'],
  ['unknown condition field', doc(when({ key: 'source.ip', values: ['1.2.3.4'], value: ['x'] })), 'unknown_field', 'spec.rules[0].when[0].value'],
  ['unknown metadata field', doc({}, { metadata: { name: 'p', nmespace: 'x' } }), 'unknown_field', 'metadata.nmespace'],
  ['unknown field in the from wrapper', doc({ rules: [{ from: [{ sources: {} }] }] }), 'unknown_field', 'spec.rules[0].from[0].sources'],
  ['from entry without source', doc({ rules: [{ from: [{}] }] }), 'missing_field', 'spec.rules[0].from[0]'],
  ['to entry without operation', doc({ rules: [{ to: [{ operation: null }] }] }), 'missing_field', 'spec.rules[0].to[0]'],
  ['unknown when key', doc(when({ key: 'source.ipp', values: ['1.2.3.4'] })), 'unknown_when_key', 'spec.rules[0].when[0].key'],
  ['when key with empty header name', doc(when({ key: 'request.headers[]', values: ['x'] })), 'unknown_when_key', 'spec.rules[0].when[0].key'],
  ['experimental key without [key]', doc(when({ key: 'experimental.envoy.filters.x', values: ['x'] })), 'unknown_when_key', 'spec.rules[0].when[0].key'],
  ['claims key without a claim', doc(when({ key: 'request.auth.claims[]', values: ['x'] })), 'unknown_when_key', 'spec.rules[0].when[0].key'],
  ['retired key destination.namespace', doc(when({ key: 'destination.namespace', values: ['x'] })), 'unknown_when_key', 'spec.rules[0].when[0].key'],
  ['path template with {**} not last', doc(op({ paths: ['/{**}/a/{*}'] })), 'bad_path_template', 'spec.rules[0].to[0].operation.paths[0]'],
  ['brace outside a path template', doc(op({ notPaths: ['/a/{id}'] })), 'bad_path_template', 'spec.rules[0].to[0].operation.notPaths[0]'],
  ['path template without leading slash', doc(op({ paths: ['{*}/a'] })), 'bad_path_template', 'spec.rules[0].to[0].operation.paths[0]'],
  ['service account with a wildcard', doc(src({ serviceAccounts: ['ns/*'] })), 'bad_service_account', 'spec.rules[0].from[0].source.serviceAccounts[0]'],
  ['service account without namespace in a policy without one', doc(src({ serviceAccounts: ['sa'] }), { metadata: { name: 'p' } }), 'missing_namespace', 'spec.rules[0].from[0].source.serviceAccounts[0]'],
  ['serviceAccounts with namespaces', doc(src({ serviceAccounts: ['ns/sa'], namespaces: ['ns'] })), 'conflicting_fields', 'spec.rules[0].from[0].source'],
  ['trust domain with a slash', doc(src({ trustDomains: ['spiffe://td'] })), 'bad_trust_domain', 'spec.rules[0].from[0].source.trustDomains[0]'],
  ['DENY without rules', doc({ action: 'DENY' }), 'deny_without_rules', 'spec.rules'],
  ['DENY with rules: []', doc({ action: 'DENY', rules: [] }), 'deny_without_rules', 'spec.rules'],
  ['dry-run on AUDIT', doc({ action: 'AUDIT', rules: [{}] }, { metadata: { name: 'p', annotations: { 'istio.io/dry-run': 'false' } } }), 'bad_annotation', 'metadata.annotations["istio.io/dry-run"]'],
  ['selector label with a wildcard', doc({ selector: { matchLabels: { app: 'a-*' } } }), 'bad_selector', 'spec.selector.matchLabels.app'],
  ['selector with an empty label key', doc({ selector: { matchLabels: { '': 'a' } } }), 'bad_selector', 'spec.selector.matchLabels[""]'],
  ['targetRef with a namespace', doc({ targetRef: { kind: 'Service', name: 's', namespace: 'x' } }), 'bad_target_ref', 'spec.targetRef.namespace'],
  ['targetRef to an unknown kind', doc({ targetRefs: [{ group: 'apps', kind: 'Deployment', name: 's' }] }), 'bad_target_ref', 'spec.targetRefs[0].kind'],
  ['more than 512 rules', doc({ rules: Array.from({ length: 513 }, () => ({})) }), 'too_many_items', 'spec.rules'],
  ['more than 16 service accounts', doc(src({ serviceAccounts: Array.from({ length: 17 }, (_, i) => `ns/sa${i}`) })), 'too_many_items', 'spec.rules[0].from[0].source.serviceAccounts'],
  ['when without values', doc(when({ key: 'source.ip' })), 'when_without_values', 'spec.rules[0].when[0]'],
  ['when without key', doc(when({ values: ['x'] })), 'missing_field', 'spec.rules[0].when[0].key'],
  ['empty source', doc(src({})), 'empty_source', 'spec.rules[0].from[0].source'],
  ['empty operation', doc(op({})), 'empty_operation', 'spec.rules[0].to[0].operation'],
  ['empty from list', doc({ rules: [{ from: [] }] }), 'empty_list', 'spec.rules[0].from'],
  ['empty to list', doc({ rules: [{ to: [] }] }), 'empty_list', 'spec.rules[0].to'],
  ['source whose only list is empty', doc(src({ principals: [] })), 'empty_source', 'spec.rules[0].from[0].source'],
  ['operation whose only list is empty', doc(op({ notPaths: [] })), 'empty_operation', 'spec.rules[0].to[0].operation'],
  ['empty values list and no notValues', doc(when({ key: 'source.ip', values: [] })), 'when_without_values', 'spec.rules[0].when[0]'],
  ['empty string value', doc(src({ principals: ['a/b', ''] })), 'empty_value', 'spec.rules[0].from[0].source.principals[1]'],
  ['empty string in when values', doc(when({ key: 'request.headers[x-a]', values: [''] })), 'empty_value', 'spec.rules[0].when[0].values[0]'],
  ['port not a number', doc(op({ ports: ['http'] })), 'bad_port', 'spec.rules[0].to[0].operation.ports[0]'],
  ['port too large', doc(op({ notPorts: ['65536'] })), 'bad_port', 'spec.rules[0].to[0].operation.notPorts[0]'],
  ['port wildcard', doc(op({ ports: ['80*'] })), 'bad_port', 'spec.rules[0].to[0].operation.ports[0]'],
  ['port range', doc(op({ ports: ['80-90'] })), 'bad_port', 'spec.rules[0].to[0].operation.ports[0]'],
  ['port as a YAML number', doc(op({ ports: [8080] })), 'wrong_type', 'spec.rules[0].to[0].operation.ports[0]'],
  ['destination.port malformed', doc(when({ key: 'destination.port', values: ['80 '] })), 'bad_port', 'spec.rules[0].when[0].values[0]'],
  ['bad CIDR', doc(src({ ipBlocks: ['10.0.0.0/33'] })), 'bad_cidr', 'spec.rules[0].from[0].source.ipBlocks[0]'],
  ['bad IP', doc(src({ notIpBlocks: ['10.0.0.256'] })), 'bad_cidr', 'spec.rules[0].from[0].source.notIpBlocks[0]'],
  ['IP with leading zero', doc(src({ remoteIpBlocks: ['10.0.0.01'] })), 'bad_cidr', 'spec.rules[0].from[0].source.remoteIpBlocks[0]'],
  ['bad IPv6', doc(src({ notRemoteIpBlocks: ['2001:db8:::1/64'] })), 'bad_cidr', 'spec.rules[0].from[0].source.notRemoteIpBlocks[0]'],
  ['IP wildcard', doc(src({ ipBlocks: ['*'] })), 'bad_cidr', 'spec.rules[0].from[0].source.ipBlocks[0]'],
  ['source.ip not an IP', doc(when({ key: 'source.ip', values: ['localhost'] })), 'bad_cidr', 'spec.rules[0].when[0].values[0]'],
  ['destination.ip bad prefix', doc(when({ key: 'destination.ip', notValues: ['::1/129'] })), 'bad_cidr', 'spec.rules[0].when[0].notValues[0]'],
  ['value not a string', doc(src({ principals: [{ a: 1 }] })), 'wrong_type', 'spec.rules[0].from[0].source.principals[0]'],
  ['field not a list', doc(src({ principals: 'a/b' })), 'wrong_type', 'spec.rules[0].from[0].source.principals'],
  ['rules not a list', doc({ rules: {} }), 'wrong_type', 'spec.rules'],
  ['null rule', doc({ rules: [null] }), 'wrong_type', 'spec.rules[0]'],
  ['unknown action', doc({ action: 'REJECT' }), 'unknown_action', 'spec.action'],
  ['lower-case action', doc({ action: 'deny' }), 'unknown_action', 'spec.action'],
  ['CUSTOM refused', doc({ action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }), 'custom_refused', 'spec.action'],
  ['provider without CUSTOM', doc({ action: 'ALLOW', provider: { name: 'opa' } }), 'unknown_field', 'spec.provider'],
  ['wrong kind', doc({}, { kind: 'PeerAuthentication' }), 'wrong_kind', 'kind'],
  ['missing kind', doc({}, { kind: undefined }), 'wrong_kind', 'kind'],
  ['wrong apiVersion', doc({}, { apiVersion: 'security.istio.io/v2' }), 'wrong_api_version', 'apiVersion'],
  ['missing apiVersion', doc({}, { apiVersion: undefined }), 'wrong_api_version', 'apiVersion'],
  ['missing name', doc({}, { metadata: { namespace: 'x' } }), 'missing_name', 'metadata'],
  ['missing metadata', doc({}, { metadata: undefined }), 'missing_name', 'metadata'],
  ['invalid name', doc({}, { metadata: { name: 'Allow_Frontend' } }), 'bad_name', 'metadata.name'],
  ['invalid namespace', doc({}, { metadata: { name: 'p', namespace: 'a.b' } }), 'bad_name', 'metadata.namespace'],
  ['missing spec', doc(undefined), 'missing_spec', undefined],
  ['spec not a mapping', doc([]), 'wrong_type', 'spec'],
  ['dry-run annotation not a boolean string', doc({}, { metadata: { name: 'p', annotations: { 'istio.io/dry-run': 'yes' } } }), 'bad_annotation', 'metadata.annotations["istio.io/dry-run"]'],
  ['dry-run annotation unquoted', doc({}, { metadata: { name: 'p', annotations: { 'istio.io/dry-run': true } } }), 'wrong_type', 'metadata.annotations["istio.io/dry-run"]'],
  ['selector and targetRefs together', doc({ selector: { matchLabels: { app: 'a' } }, targetRefs: [{ kind: 'Service', name: 's' }] }), 'conflicting_fields', 'spec.targetRefs'],
  ['targetRef and targetRefs together', doc({ targetRef: { kind: 'Service', name: 's' }, targetRefs: [{ kind: 'Service', name: 's' }] }), 'conflicting_fields', 'spec.targetRefs'],
  ['targetRef without name', doc({ targetRef: { kind: 'Service' } }), 'missing_field', 'spec.targetRef.name'],
  ['unknown targetRef field', doc({ targetRefs: [{ kind: 'Service', name: 's', port: 80 }] }), 'unknown_field', 'spec.targetRefs[0].port'],
  ['not a mapping', '- a\n- b\n', 'wrong_type', undefined],
  ['YAML syntax error', 'apiVersion: [unclosed\n', 'yaml_syntax', undefined],
  ['duplicate YAML key', `apiVersion: ${API}\napiVersion: ${API}\n`, 'yaml_syntax', undefined],
];

for (const [title, text, code, path] of invalid) {
  test(`invalid: ${title}`, (t) => {
    const errors = errorsOf(text);
    t.true(errors.length > 0, 'expected an error');
    const hit = errors.find((e) => e.code === code);
    t.truthy(hit, `expected code ${code}, got ${errors.map((e) => `${e.code} ${e.path}`).join('; ')}`);
    t.is(hit?.path, path);
    t.is(hit?.file, 'a.yaml');
    t.is(hit?.doc, 1);
    t.is(hit?.severity, 'error');
    t.is(parsePolicyFile('a.yaml', text).policies.length, 0, 'an invalid document yields no policy');
  });
}

test('an error names file, line, document number, policy name and field path', (t) => {
  const text = [
    `apiVersion: ${API}`,
    'kind: AuthorizationPolicy',
    'metadata: {name: first}',
    'spec: {}',
    '---',
    `apiVersion: ${API}`,
    'kind: AuthorizationPolicy',
    'metadata:',
    '  name: allow-frontend',
    'spec:',
    '  rules:',
    '  - from:',
    '    - source:',
    '        principals:',
    '        - cluster.local/ns/shop/sa/frontend',
    '        ipBlocks:',
    '        - 10.0.0.0/33',
    '',
  ].join('\n');
  const [e, ...rest] = errorsOf(text);
  t.is(rest.length, 0);
  t.is(e?.line, 17);
  t.is(formatIssue(e!), 'a.yaml:17 doc 2 (allow-frontend): spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" has an invalid prefix length (0-32)');
});

test('all errors of a document are reported at once, and the spec is checked even when metadata is bad', (t) => {
  const text = doc(
    { action: 'allow', rules: [{ from: [{ source: { principals: [''] } }], to: [{ operation: { ports: ['x'] } }] }] },
    { metadata: { name: 'Bad Name' } },
  );
  const codes = errorsOf(text).map((e) => e.code).sort();
  t.deepEqual(codes, ['bad_name', 'bad_port', 'empty_value', 'unknown_action']);
});

test('unknown fields suggest the intended name', (t) => {
  const [e] = errorsOf(doc(op({ method: ['GET'] })));
  t.regex(e!.message, /did you mean methods\?/);
  const [k] = errorsOf(doc(when({ key: 'source.ipp', values: ['1.2.3.4'] })));
  t.regex(k!.message, /did you mean source\.ip\?/);
});

test('valid: every documented field and key is accepted and kept as written', (t) => {
  const text = doc(
    {
      action: 'DENY',
      selector: { matchLabels: { app: 'orders' } },
      rules: [
        {
          from: [
            {
              source: {
                principals: ['cluster.local/ns/a/sa/b', 'cluster.local/ns/a/*', '*/sa/b', '*'],
                notPrincipals: ['x/y'],
                namespaces: ['a', 'b*', '*c'],
                notNamespaces: ['d'],
                ipBlocks: ['10.0.0.0/8', '192.168.1.1', '2001:db8::/32'],
                notIpBlocks: ['::1'],
                remoteIpBlocks: ['0.0.0.0/0'],
                notRemoteIpBlocks: ['::ffff:10.0.0.0/104'],
              },
            },
          ],
          to: [
            {
              operation: {
                hosts: ['a.example.com', '*.example.com', 'b.example.com:8080'],
                notHosts: ['admin.*'],
                ports: ['8080', '1', '65535'],
                notPorts: ['9090'],
                methods: ['GET'],
                notMethods: ['DELETE'],
                paths: ['/api/*', '*.js', '/x'],
                notPaths: ['/admin*'],
              },
            },
          ],
          when: [
            { key: 'request.headers[X-Tenant]', values: ['acme'], notValues: ['evil*'] },
            { key: 'source.ip', values: ['10.0.0.0/8'] },
            { key: 'remote.ip', notValues: ['1.2.3.4'] },
            { key: 'source.namespace', values: ['a'] },
            { key: 'source.principal', values: ['cluster.local/ns/a/sa/b'] },
            { key: 'destination.ip', values: ['127.0.0.1'] },
            { key: 'destination.port', values: ['8080'] },
            { key: 'connection.sni', values: ['*.example.com'] },
          ],
        },
        {},
      ],
    },
    { metadata: { name: 'everything', namespace: 'shop', labels: { a: 'b' }, annotations: { 'istio.io/dry-run': 'true' }, uid: 'x', resourceVersion: '1' }, status: {} },
  );
  const r = parsePolicyFile('a.yaml', text);
  t.deepEqual(r.errors, []);
  const [p] = r.policies;
  t.is(p?.id, 'shop/everything');
  t.is(p?.action, 'DENY');
  t.true(p?.dryRun);
  t.deepEqual(p?.selector, { app: 'orders' });
  t.is(p?.rules.length, 2);
  t.deepEqual(p?.rules[1], {});
  t.deepEqual(p?.rules[0]?.from?.[0]?.namespaces, ['a', 'b*', '*c']);
  t.is(p?.rules[0]?.when?.length, 8);
});

test('valid: defaults (action ALLOW, no dry-run), v1beta1, spec {} and rules [] mean "no rules"', (t) => {
  const r = parsePolicyFile(
    'a.yaml',
    [doc({}), doc({ rules: [] }, { metadata: { name: 'q' } }), doc({ targetRefs: [{ kind: 'Service', group: '', name: 'orders' }] }, { apiVersion: 'security.istio.io/v1beta1', metadata: { name: 'r' } })].join('\n---\n'),
  );
  t.deepEqual(r.errors, []);
  t.deepEqual(
    r.policies.map((p) => [p.id, p.action, p.dryRun, p.rules.length, p.apiVersion]),
    [
      ['shop/p', 'ALLOW', false, 0, API],
      ['q', 'ALLOW', false, 0, API],
      ['r', 'ALLOW', false, 0, 'security.istio.io/v1beta1'],
    ],
  );
  t.deepEqual(r.policies[2]?.targetRefs, [{ kind: 'Service', group: '', name: 'orders' }]);
  t.is(r.policies[0]?.origin.doc, 1);
  t.is(r.policies[2]?.origin.doc, 3);
});

test('empty documents and comments are skipped but keep document numbering', (t) => {
  const r = parsePolicyFile('a.yaml', `---\n# nothing here\n---\n${doc({ rules: [{ bogus: 1 }] })}\n---\n`);
  t.is(r.errors[0]?.doc, 2);
});

test('a policy defined twice across files is an error naming both places', (t) => {
  const r = parsePolicyFiles([
    { file: 'a.yaml', text: doc({}) },
    { file: 'b.yaml', text: `${doc({}, { metadata: { name: 'other' } })}\n---\n${doc({})}` },
  ]);
  t.is(r.errors.length, 1);
  t.is(r.errors[0]?.code, 'duplicate_policy');
  t.is(r.errors[0]?.file, 'b.yaml');
  t.is(r.errors[0]?.doc, 2);
  t.regex(r.errors[0]!.message, /first in a\.yaml doc 1/);
});

test('the same name in different namespaces is two policies', (t) => {
  const r = parsePolicyFiles([{ file: 'a.yaml', text: `${doc({})}\n---\n${doc({}, { metadata: { name: 'p', namespace: 'other' } })}` }]);
  t.deepEqual(r.errors, []);
  t.deepEqual(r.policies.map((p) => p.id), ['shop/p', 'other/p']);
});

test('a YAML syntax error names line and column, once per document: no cascade of follow-on errors', (t) => {
  const text = [`apiVersion: ${API}`, 'kind: AuthorizationPolicy', 'metadata: {name: broken', 'spec:', '  action: ALLOW', '  rules: [{}', ''].join('\n');
  const errors = errorsOf(text);
  t.is(errors.length, 1, errors.map(formatIssue).join('\n'));
  const [e] = errors;
  t.is(e?.code, 'yaml_syntax');
  t.is(typeof e?.line, 'number');
  t.is(typeof e?.column, 'number');
  t.regex(formatIssue(e!), /^a\.yaml:\d+:\d+ doc 1: not valid YAML: /);
});

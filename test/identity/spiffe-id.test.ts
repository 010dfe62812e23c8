import test from 'ava';
import { parseSpiffeId, parseTrustDomain, SpiffeIdError, type SpiffeIdRule, workloadSpiffeId } from '../../src/identity/spiffe-id.js';

const valid: Array<[string, string, string]> = [
  ['spiffe://example.org', 'example.org', ''],
  ['spiffe://cluster.local/ns/shop/sa/frontend', 'cluster.local', '/ns/shop/sa/frontend'],
  ['spiffe://td_with-all.chars09/Path_With-UPPER.case/09', 'td_with-all.chars09', '/Path_With-UPPER.case/09'],
  ['spiffe://a/b', 'a', '/b'],
  ['spiffe://example.org/...x/x..', 'example.org', '/...x/x..'],
];

for (const [input, td, path] of valid) {
  test(`valid: ${input}`, (t) => {
    const id = parseSpiffeId(input);
    t.is(id.trustDomain, td);
    t.is(id.path, path);
    t.is(id.uri, input);
    t.true(Object.isFrozen(id));
  });
}

test('valid: a 2048-byte ID is supported', (t) => {
  const prefix = 'spiffe://example.org/';
  const id = prefix + 'a'.repeat(2048 - prefix.length);
  t.is(parseSpiffeId(id).uri.length, 2048);
});

const invalid: Array<[string, SpiffeIdRule]> = [
  ['', 'empty'],
  ['http://example.org/x', 'scheme'],
  ['SPIFFE://example.org/x', 'scheme'],
  ['spiffe:/example.org/x', 'scheme'],
  ['example.org/x', 'scheme'],
  [`spiffe://example.org/${'a'.repeat(2048)}`, 'too_long'],
  ['spiffe://', 'trust_domain_missing'],
  ['spiffe:///ns/x', 'trust_domain_missing'],
  ['spiffe://Example.org/x', 'trust_domain_chars'],
  ['spiffe://exa mple.org', 'trust_domain_chars'],
  ['spiffe://exa+mple.org', 'trust_domain_chars'],
  ['spiffe://user@example.org/x', 'userinfo'],
  ['spiffe://example.org:8080/x', 'port'],
  ['spiffe://example.org/x?y=1', 'query'],
  ['spiffe://example.org?y=1', 'query'],
  ['spiffe://example.org/x#frag', 'fragment'],
  ['spiffe://example.org/x%20y', 'percent_encoding'],
  ['spiffe://example.org/x y', 'path_chars'],
  ['spiffe://example.org/x/ü', 'path_chars'],
  ['spiffe://example.org/a/b,URI:spiffe', 'path_chars'],
  ['spiffe://example.org//x', 'empty_segment'],
  ['spiffe://example.org/a//b', 'empty_segment'],
  ['spiffe://example.org/./x', 'dot_segment'],
  ['spiffe://example.org/x/..', 'dot_segment'],
  ['spiffe://example.org/', 'trailing_slash'],
  ['spiffe://example.org/x/', 'trailing_slash'],
];

for (const [input, rule] of invalid) {
  test(`invalid (${rule}): ${JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}...` : input)}`, (t) => {
    const e = t.throws(() => parseSpiffeId(input), { instanceOf: SpiffeIdError });
    t.is(e?.rule, rule);
    t.is(e?.kind, 'invalid_argument');
    t.true(e!.message.startsWith('invalid SPIFFE ID'));
  });
}

test('trust domain names', (t) => {
  t.is(parseTrustDomain('cluster.local'), 'cluster.local');
  t.is(parseTrustDomain('spiffe://cluster.local'), 'cluster.local');
  t.throws(() => parseTrustDomain('Cluster.local'), { instanceOf: SpiffeIdError });
  t.throws(() => parseTrustDomain('spiffe://cluster.local/x'), { instanceOf: SpiffeIdError });
  t.throws(() => parseTrustDomain(''), { instanceOf: SpiffeIdError });
});

test('workload IDs', (t) => {
  const id = workloadSpiffeId('cluster.local', 'shop', 'frontend');
  t.is(id.uri, 'spiffe://cluster.local/ns/shop/sa/frontend');
  t.throws(() => workloadSpiffeId('cluster.local', 'bad/ns', 'sa'), { instanceOf: SpiffeIdError });
});

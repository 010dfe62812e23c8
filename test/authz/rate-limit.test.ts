import test from 'ava';
import { evaluate, withQuota } from '../../src/authz/engine.js';
import type { AuthzInput } from '../../src/authz/facts.js';
import { buildPolicySet } from '../../src/authz/policy-set.js';
import { gcraRate, gcraStep, quotaOf } from '../../src/authz/rate-limit/gcra.js';
import { LocalLimiter } from '../../src/authz/rate-limit/local-limiter.js';
import { redisTarget } from '../../src/authz/rate-limit/redis-url.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { ALLOW_PARTNERS, PARTNER_A, PARTNER_B, rateLimitPolicy } from './helpers/rate-limit-policies.js';

const ALLOW_ALL = ALLOW_PARTNERS;
const limits = rateLimitPolicy;

const PARTNER_LIMITS = limits(`    - name: partner-a
      match: { from: [{ source: { principals: ["example.org/ns/partners/sa/partner-a"] } }] }
      rate: { requests: 1000, per: minute }
    - name: partner-b-writes
      match:
        from: [{ source: { principals: ["example.org/ns/partners/sa/partner-b"] } }]
        to: [{ operation: { methods: ["POST", "PUT"] } }]
      rate: { requests: 100, per: minute, burst: 10 }
    - name: everyone-else
      rate: { requests: 5, per: second }
      partition: namespace
`);

function set(...files: string[]) {
  const r = buildPolicySet(files.map((text, i) => ({ file: `p${i}.yaml`, text })));
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.set;
}

function errorsOf(text: string): string[] {
  const r = buildPolicySet([{ file: 'rl.yaml', text }]);
  return r.ok ? [] : r.errors.map((e) => `${e.code} ${e.path ?? ''}: ${e.message}`);
}

const req = (principal: string, method = 'GET', sourceIp = '10.0.0.7'): AuthzInput => ({ principal, method, path: '/api', host: 'api.example.com', sourceIp });

// ---- GCRA arithmetic ------------------------------------------------------------------------------

test('GCRA: from idle a full burst passes at once, then one request per interval', (t) => {
  const rate = gcraRate({ requests: 100, unit: 'minute', burst: 10 });
  t.is(rate.intervalUs, 600_000);
  let tat: number | undefined;
  const now = 1_000_000_000;
  const results: boolean[] = [];
  for (let i = 0; i < 12; i++) {
    const s = gcraStep(tat, now, rate);
    results.push(s.allowed);
    tat = s.tatUs;
  }
  t.deepEqual(results, [...Array(10).fill(true), false, false]);
  t.false(gcraStep(tat, now + 599_999, rate).allowed, 'one microsecond short of an interval: still refused');
  t.true(gcraStep(tat, now + 600_000, rate).allowed, 'one interval later: one more');
});

test('GCRA: remaining, reset and Retry-After follow the counter', (t) => {
  const rate = gcraRate({ requests: 60, unit: 'minute', burst: 3 }); // one a second, bursts of 3
  const first = gcraStep(undefined, 0, rate);
  t.deepEqual(quotaOf(true, first.tatUs, rate), { allowed: true, remaining: 2, resetSeconds: 1, retryAfterSeconds: 0 });
  const third = gcraStep(gcraStep(first.tatUs, 0, rate).tatUs, 0, rate);
  t.deepEqual(quotaOf(true, third.tatUs, rate), { allowed: true, remaining: 0, resetSeconds: 3, retryAfterSeconds: 0 });
  const refused = gcraStep(third.tatUs, 250_000, rate);
  t.false(refused.allowed);
  t.is(refused.tatUs, third.tatUs, 'a refusal does not move the counter');
  t.deepEqual(quotaOf(false, refused.tatUs - 250_000, rate), { allowed: false, remaining: 0, resetSeconds: 3, retryAfterSeconds: 1 });
});

test('local limiter: 1,000 a minute on the fake clock, no sleeps', async (t) => {
  const clock = new FakeClock(0);
  const limiter = new LocalLimiter({ clock, maxKeys: 10 });
  const rate = gcraRate({ requests: 1000, unit: 'minute', burst: 1000 });
  let allowed = 0;
  for (let i = 0; i < 1500; i++) if (limiter.take('k', rate).allowed) allowed++;
  t.is(allowed, 1000);
  await clock.advance(60_000);
  allowed = 0;
  for (let i = 0; i < 1500; i++) if (limiter.take('k', rate).allowed) allowed++;
  t.is(allowed, 1000, 'a minute later the whole quota is back');
  t.is(limiter.size, 1);
});

test('local limiter: memory is bounded; forgetting a key that held state is counted, an idle one is not', async (t) => {
  const clock = new FakeClock(0);
  let evicted = 0;
  const limiter = new LocalLimiter({ clock, maxKeys: 3, onEvict: () => evicted++ });
  const rate = gcraRate({ requests: 1, unit: 'second', burst: 1 });
  for (const k of ['a', 'b', 'c']) limiter.take(k, rate);
  limiter.take('d', rate); // evicts a, whose TAT (1 s) is still ahead
  t.is(limiter.size, 3);
  t.is(evicted, 1);
  t.true(limiter.take('a', rate).allowed, 'a forgotten key starts afresh');
  await clock.advance(10_000);
  limiter.take('e', rate); // evicts c, idle for 9 s: no state lost
  t.is(evicted, 2, 'b was evicted by a (held state), c by e (idle)');
  t.is(limiter.size, 3);
});

// ---- policy validation --------------------------------------------------------------------------

test('a RateLimitPolicy loads next to AuthorizationPolicies, limits in order', (t) => {
  const s = set(ALLOW_ALL, PARTNER_LIMITS);
  t.deepEqual(
    s.rateLimits.map((l) => [l.id, l.rate.quota, l.rate.windowSeconds, l.limit.burst, l.limit.partition]),
    [
      ['gateway/partners/partner-a', 1000, 60, 1000, 'principal'],
      ['gateway/partners/partner-b-writes', 100, 60, 10, 'principal'],
      ['gateway/partners/everyone-else', 5, 1, 5, 'namespace'],
    ],
  );
  t.is(s.policies.length, 1);
});

const invalid: Array<[string, string, RegExp]> = [
  ['wrong apiVersion', PARTNER_LIMITS.replace('meshid.dev/v1alpha1', 'meshid.dev/v1'), /wrong_api_version apiVersion: "meshid.dev\/v1" is not supported; expected meshid.dev\/v1alpha1/],
  ['missing rate', limits('    - name: a\n'), /missing_field spec.limits\[0\].rate: rate is required/],
  ['unknown unit', limits('    - name: a\n      rate: { requests: 5, per: day }\n'), /bad_value spec.limits\[0\].rate.per: per must be one of second, minute, hour, got string "day"/],
  ['zero requests', limits('    - name: a\n      rate: { requests: 0, per: second }\n'), /bad_value spec.limits\[0\].rate.requests: requests must be a whole number/],
  ['fractional requests', limits('    - name: a\n      rate: { requests: 1.5, per: second }\n'), /bad_value spec.limits\[0\].rate.requests/],
  ['quoted number', limits('    - name: a\n      rate: { requests: "100", per: second }\n'), /bad_value spec.limits\[0\].rate.requests: .*got string "100"/],
  ['zero burst', limits('    - name: a\n      rate: { requests: 5, per: second, burst: 0 }\n'), /bad_value spec.limits\[0\].rate.burst/],
  ['misspelt field', limits('    - name: a\n      rate: { requets: 5, per: second }\n'), /unknown_field spec.limits\[0\].rate.requets: unknown field \(did you mean requests\?\)/],
  ['missing name', limits('    - rate: { requests: 5, per: second }\n'), /missing_field spec.limits\[0\].name/],
  ['bad partition', limits('    - name: a\n      rate: { requests: 5, per: second }\n      partition: user\n'), /bad_value spec.limits\[0\].partition: "user": expected one of principal, namespace, sourceIp, shared/],
  ['duplicate limit', limits('    - name: a\n      rate: { requests: 5, per: second }\n    - name: a\n      rate: { requests: 6, per: second }\n'), /duplicate_limit spec.limits\[1\].name/],
  ['empty limits', limits('    []\n').replace('  limits:\n    []', '  limits: []'), /empty_list spec.limits/],
  ['an Istio field misspelt in match', limits('    - name: a\n      match: { from: [{ source: { principal: ["x"] } }] }\n      rate: { requests: 5, per: second }\n'), /unknown_field spec.limits\[0\].match.from\[0\].source.principal: unknown field \(did you mean principals\?\)/],
  ['dry-run annotation', PARTNER_LIMITS.replace('namespace: gateway }', 'namespace: gateway, annotations: { istio.io/dry-run: "true" } }'), /bad_annotation .*has no dry-run mode/],
];

for (const [title, text, expected] of invalid) {
  test(`RateLimitPolicy refused: ${title}`, (t) => {
    const errors = errorsOf(text);
    t.true(errors.some((e) => expected.test(e)), errors.join('\n'));
  });
}

test('two RateLimitPolicies with one name are refused; an AuthorizationPolicy may share the name', (t) => {
  const r = buildPolicySet([
    { file: 'a.yaml', text: PARTNER_LIMITS },
    { file: 'b.yaml', text: PARTNER_LIMITS },
    { file: 'c.yaml', text: ALLOW_ALL.replace('allow-partners', 'partners') },
  ]);
  t.false(r.ok);
  if (!r.ok) t.deepEqual(r.errors.map((e) => `${e.file} ${e.code} ${e.message}`), ['b.yaml duplicate_policy RateLimitPolicy gateway/partners is defined twice (first in a.yaml doc 1)']);
});

// ---- which limit applies ------------------------------------------------------------------------

test('the first matching limit applies, only to allowed requests, with a key per partition', (t) => {
  const s = set(ALLOW_ALL, PARTNER_LIMITS);
  const a = evaluate(s, req(PARTNER_A));
  t.is(a.rateLimit?.limit.id, 'gateway/partners/partner-a');
  t.is(a.rateLimit?.key, `gateway/partners/partner-a|principal|${PARTNER_A}`);
  t.is(evaluate(s, req(PARTNER_B, 'POST')).rateLimit?.limit.id, 'gateway/partners/partner-b-writes');
  const bRead = evaluate(s, req(PARTNER_B, 'GET'));
  t.is(bRead.rateLimit?.limit.id, 'gateway/partners/everyone-else', 'the writes limit does not match a GET: the next one does');
  t.is(bRead.rateLimit?.key, 'gateway/partners/everyone-else|namespace|partners');
  const outsider = evaluate(s, req('spiffe://example.org/ns/shop/sa/web'));
  t.false(outsider.allow);
  t.is(outsider.rateLimit, undefined, 'a denied request is not counted');
});

test('partition by source IP: an IPv4 client and its IPv4-mapped IPv6 form share one counter', (t) => {
  const s = set(limits('    - name: per-ip\n      rate: { requests: 5, per: second }\n      partition: sourceIp\n'));
  const k4 = evaluate(s, req(PARTNER_A, 'GET', '10.1.2.3')).rateLimit?.key;
  const k6 = evaluate(s, req(PARTNER_B, 'GET', '::ffff:10.1.2.3')).rateLimit?.key;
  t.truthy(k4);
  t.is(k4, k6);
  t.not(evaluate(s, req(PARTNER_A, 'GET', '10.1.2.4')).rateLimit?.key, k4);
});

test('over the limit: the allowed decision becomes rate_limited, naming the limit', (t) => {
  const s = set(ALLOW_ALL, PARTNER_LIMITS);
  const d = evaluate(s, req(PARTNER_A));
  const limited = withQuota(d, { allowed: false, remaining: 0, resetSeconds: 60, retryAfterSeconds: 1 });
  t.like(limited, { allow: false, reason: 'rate_limited', detail: 'over gateway/partners/partner-a' });
  t.is(withQuota(d, { allowed: true, remaining: 5, resetSeconds: 1, retryAfterSeconds: 0 }).allow, true);
  t.is(withQuota(d, { allowed: false, remaining: 0, resetSeconds: 0, retryAfterSeconds: 1, fallback: 'closed' }).reason, 'rate_limit_unavailable');
});

test('--rate-limit-redis URL forms', (t) => {
  t.deepEqual(redisTarget('redis://127.0.0.1:6380/2'), { host: '127.0.0.1', port: 6380, db: 2 });
  t.deepEqual(redisTarget('redis://:s3cret@[::1]:6379'), { host: '::1', port: 6379, db: 0, password: 's3cret' });
  t.deepEqual(redisTarget('unix:///run/redis/redis.sock'), { path: '/run/redis/redis.sock' });
  t.like(redisTarget('rediss://redis.example:6379'), { tls: {} });
  t.throws(() => redisTarget('http://x'), { message: /unsupported scheme http:/ });
  t.throws(() => redisTarget('localhost:6379'), { message: /unsupported scheme localhost:/ });
  t.throws(() => redisTarget('redis://h/x'), { message: /database must be a number/ });
});

import { createHmac } from 'node:crypto';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { DecisionLog, type DecisionRecord } from '../../src/authz/decision-log.js';
import { evaluate } from '../../src/authz/engine.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { lineSink } from '../helpers/logs.js';
import { compileDescs } from './helpers/policies.js';


const set = compileDescs([
  { name: 'allow-all', action: 'ALLOW', rules: [{}] },
  { name: 'try', action: 'DENY', dryRun: true, rules: [{ to: [{ operation: { paths: ['/x'] } }] }] },
]);

function record(path: string, extra: Partial<DecisionRecord> = {}): DecisionRecord {
  const input = { principal: 'spiffe://td/ns/a/sa/b', method: 'GET', host: 'h', path };
  const decision = evaluate(set, input);
  return { decisionId: 'id-1', requestId: 'req "quoted"\n', input, decision, latencyUs: 12, ...extra };
}

test('one pino line per decision: flat fields, no query string, the dry-run outcome when it would change things', (t) => {
  const s = lineSink();
  const log = new DecisionLog(createLogger({ destination: s.stream }).child({ component: 'authz-decision' }), { sampleRate: 1 });
  for (const r of [record('/a?token=secret'), record('/x'), record('/ü/"odd"\\path', { requestId: undefined, latencyUs: 0.5 })]) log.record(r);
  const lines = s.lines();
  t.is(lines.length, 3);
  t.like(JSON.parse(lines[0]!), { level: 'info', component: 'authz-decision', decision_id: 'id-1', path: '/a', outcome: 'allow', policy: 'shop/allow-all', rule: 0, msg: 'authz allow GET /a from spiffe://td/ns/a/sa/b: shop/allow-all rule 0' });
  t.false(lines.join('').includes('secret'));
  t.like(JSON.parse(lines[1]!), { dry_run_outcome: 'deny', dry_run_changed: true, dry_run_effective_policy: 'shop/try', msg: 'authz allow GET /x from spiffe://td/ns/a/sa/b: shop/allow-all rule 0 (dry-run policies would deny)' });
  t.like(JSON.parse(lines[2]!), { path_received: '/ü/"odd"\\path', latency_us: 0.5 });
  t.false('request_id' in JSON.parse(lines[2]!), 'absent fields are left out');
});

test('a logger with its own redaction still applies it', (t) => {
  const s = lineSink();
  new DecisionLog(pino({ redact: ['principal'] }, s.stream) as unknown as Logger, { sampleRate: 1 }).record(record('/a'));
  t.like(JSON.parse(s.lines()[0]!), { principal: '[Redacted]', outcome: 'allow' });
});

test('nothing is written when info is disabled, and sampling picks a fraction', (t) => {
  const s = lineSink();
  const quiet = createLogger({ destination: s.stream, level: 'warn' });
  new DecisionLog(quiet, { sampleRate: 1 }).record(record('/a'));
  t.is(s.lines().length, 0);
  let n = 0;
  const log = new DecisionLog(quiet, { sampleRate: 0.25, random: () => [0.1, 0.3, 0.2, 0.9][n++ % 4]! });
  const d = record('/a').decision;
  t.deepEqual([log.wants(d), log.wants(d), log.wants(d), log.wants(d)], [true, false, true, false]);
  t.false(new DecisionLog(quiet, { sampleRate: 0 }).wants(d));
  t.true(new DecisionLog(quiet, { sampleRate: 0 }).wants(record('/x').decision), 'a dry-run change is always logged');
});

test('a 3.9 MB path gives a bounded line, marked as truncated (issue 12 item 5)', (t) => {
  const s = lineSink();
  const log = new DecisionLog(createLogger({ destination: s.stream }), { sampleRate: 1 });
  const path = `/${'a'.repeat(3_900_000)}`;
  const r = record(path);
  log.record({ ...r, input: { ...r.input!, headers: { 'x-big': 'v'.repeat(1_000_000), ':path': path }, host: 'h'.repeat(100_000) } });
  const line = s.lines()[0]!;
  t.true(line.length < 20_000, `line of ${line.length} bytes`);
  const o = JSON.parse(line) as Record<string, unknown>;
  t.is(o.truncated, 'host,path_received,path');
  t.true((o.path_received as string).endsWith(`…[truncated ${3_900_001 - 4096} bytes]`));
  t.true((o.path_received as string).startsWith('/aaa'));
});

test('every matchable attribute is on the line; header values hashed unless named, credentials never', (t) => {
  const s = lineSink();
  const key = Buffer.alloc(32, 7);
  const log = new DecisionLog(createLogger({ destination: s.stream }), { sampleRate: 1, headers: ['x-tenant', 'authorization'], hashKey: key });
  const input = {
    principal: 'spiffe://td/ns/shop/sa/web',
    peerCertificate: { status: 'verified' as const, spiffeId: 'spiffe://td/ns/shop/sa/web' },
    sourceIp: '10.0.0.1', destinationIp: '10.0.0.2', destinationPort: 8443, sni: 'api.shop', method: 'POST', host: 'API.shop:8443',
    path: '/a/../b/./c?token=secret',
    headers: { 'x-tenant': 'acme', authorization: 'Bearer secret-token', 'user-agent': 'curl' },
    requestAuth: { principal: 'iss/sub', audiences: ['shop'], presenter: 'web', claims: { groups: ['admin'] } },
    metadata: { 'envoy.filters.http.jwt_authn': { k: 'v' } },
  };
  log.record({ decisionId: 'd', requestId: undefined, input, decision: evaluate(set, input), latencyUs: 1 });
  const line = s.lines()[0]!;
  t.false(line.includes('secret'), 'no token, no query string');
  t.false(line.includes('curl'));
  const o = JSON.parse(line) as Record<string, unknown>;
  t.like(o, {
    log_format: 2, principal: 'spiffe://td/ns/shop/sa/web', source_namespaces: 'shop', peer_certificate: 'verified', source_ip: '10.0.0.1', destination_ip: '10.0.0.2',
    destination_port: 8443, sni: 'api.shop', method: 'POST', host: 'API.shop:8443', path_received: '/a/../b/./c', path: '/b/c',
    request_principal: 'iss/sub', request_audiences: '["shop"]', request_presenter: 'web', request_claims: '{"groups":["admin"]}',
    metadata: '{"envoy.filters.http.jwt_authn":{"k":"v"}}',
  });
  const headers = o.headers as Record<string, string>;
  t.is(headers['x-tenant'], 'acme');
  t.is(headers['user-agent'], log.hash('curl'));
  t.regex(headers.authorization!, /^hmac-sha256:[0-9a-f]{16}$/);
  t.not(new DecisionLog(createLogger({ destination: s.stream }), { sampleRate: 1 }).hash('curl'), log.hash('curl'), 'the key is per process, not fixed');
  t.false('truncated' in o);
});

test('a hashed header value is HMAC-SHA256 under the key (RFC 2104), for short and long keys, cached or not', (t) => {
  for (const key of [Buffer.alloc(32, 7), Buffer.alloc(64, 1), Buffer.alloc(100, 9)]) {
    const log = new DecisionLog(createLogger({ destination: new PassThrough() }), { sampleRate: 1, hashKey: key });
    for (const v of ['', 'curl', 'é☃ tenant', 'x'.repeat(5000), 'curl']) {
      t.is(log.hash(v), `hmac-sha256:${createHmac('sha256', key).update(v).digest('hex').slice(0, 16)}`, `key of ${key.length} bytes, value of ${v.length}`);
    }
  }
});

test('the token outcome: source, verified/invalid/not_bound with the reason, issuer, subject and binding; nothing without a token', (t) => {
  const s = lineSink();
  const log = new DecisionLog(createLogger({ destination: s.stream }), { sampleRate: 1, fieldCap: 64 });
  const base = record('/a');
  const auth = { principal: 'https://idp/alice', audiences: ['api'], claims: { iss: 'https://idp', sub: 'alice', cnf: { 'x5t#S256': 'abc' } }, certificateBound: true };
  const binding = { expected: 'abc', actual: 'abc', bound: true };
  log.record({ ...base, input: { ...base.input!, requestAuth: auth }, token: { source: 'bearer', status: 'valid', principal: auth.principal, binding } });
  log.record({ ...base, token: { source: 'jwt_authn', status: 'not_bound', problem: 'the token is bound to another certificate', binding: { ...binding, actual: 'xyz', bound: false }, issuer: 'https://idp', subject: 'alice' } });
  log.record({ ...base, token: { source: 'bearer', status: 'invalid', problem: 'the token has expired', issuer: 'https://idp', subject: `eve${'e'.repeat(100)}` } });
  log.record(base);
  const [bound, notBound, invalid, none] = s.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(bound, { token_source: 'bearer', token_status: 'verified', token_issuer: 'https://idp', token_subject: 'alice', token_bound: true, request_certificate_bound: true });
  t.false('token_reason' in bound!);
  t.like(notBound, { token_source: 'jwt_authn', token_status: 'not_bound', token_reason: 'the token is bound to another certificate', token_issuer: 'https://idp', token_subject: 'alice', token_bound: false });
  t.like(invalid, { token_status: 'invalid', token_reason: 'the token has expired', token_issuer: 'https://idp' });
  t.false('token_bound' in invalid!, 'an invalid token is neither bound nor unbound');
  t.regex(String(invalid!.token_subject), /^evee*…\[truncated \d+ bytes\]$/);
  t.regex(String(invalid!.truncated), /token_subject/, 'an unverified subject is capped like any value');
  for (const f of ['token_source', 'token_status', 'token_reason', 'token_issuer', 'token_subject', 'token_bound']) t.false(f in none!, f);
});

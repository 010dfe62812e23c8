import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { DecisionLog, type DecisionRecord } from '../../src/authz/decision-log.js';
import { evaluate } from '../../src/authz/engine.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { compileDescs } from './helpers/policies.js';

function sink(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

const set = compileDescs([
  { name: 'allow-all', action: 'ALLOW', rules: [{}] },
  { name: 'try', action: 'DENY', dryRun: true, rules: [{ to: [{ operation: { paths: ['/x'] } }] }] },
]);

function record(path: string, extra: Partial<DecisionRecord> = {}): DecisionRecord {
  const decision = evaluate(set, { principal: 'spiffe://td/ns/a/sa/b', method: 'GET', host: 'h', path });
  return { decisionId: 'id-1', requestId: 'req "quoted"\n', principal: 'spiffe://td/ns/a/sa/b', method: 'GET', host: 'h', path, decision, latencyUs: 12, ...extra };
}

test('one pino line per decision: flat fields, no query string, the dry-run outcome when it would change things', (t) => {
  const s = sink();
  const log = new DecisionLog(createLogger({ destination: s.stream }).child({ component: 'authz-decision' }), { sampleRate: 1 });
  for (const r of [record('/a?token=secret'), record('/x'), record('/ü/"odd"\\path', { requestId: undefined, latencyUs: 0.5 })]) log.record(r);
  const lines = s.lines();
  t.is(lines.length, 3);
  t.like(JSON.parse(lines[0]!), { level: 'info', component: 'authz-decision', decision_id: 'id-1', path: '/a', outcome: 'allow', policy: 'shop/allow-all', rule: 0, msg: 'authz allow GET /a from spiffe://td/ns/a/sa/b: shop/allow-all rule 0' });
  t.false(lines.join('').includes('secret'));
  t.like(JSON.parse(lines[1]!), { dry_run_outcome: 'deny', dry_run_changed: true, dry_run_policy: 'shop/try', msg: 'authz allow GET /x from spiffe://td/ns/a/sa/b: shop/allow-all rule 0 (dry-run policies would deny)' });
  t.like(JSON.parse(lines[2]!), { path: '/ü/"odd"\\path', latency_us: 0.5 });
  t.false('request_id' in JSON.parse(lines[2]!), 'absent fields are left out');
});

test('a logger with its own redaction still applies it', (t) => {
  const s = sink();
  new DecisionLog(pino({ redact: ['principal'] }, s.stream) as unknown as Logger, { sampleRate: 1 }).record(record('/a'));
  t.like(JSON.parse(s.lines()[0]!), { principal: '[Redacted]', outcome: 'allow' });
});

test('nothing is written when info is disabled, and sampling picks a fraction', (t) => {
  const s = sink();
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

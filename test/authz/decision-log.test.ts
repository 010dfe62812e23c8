import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { DecisionLog, directWriter, type DecisionRecord } from '../../src/authz/decision-log.js';
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

/** Lines without their time, which differs between two calls. */
const untimed = (lines: string[]) => lines.map((l) => l.replace(/"time":"[^"]*",/, ''));

test("the direct writer produces pino's own line, byte for byte, with the project's logger", (t) => {
  const viaPino = sink();
  const direct = sink();
  const a = createLogger({ destination: viaPino.stream }).child({ component: 'authz-decision' });
  const b = createLogger({ destination: direct.stream }).child({ component: 'authz-decision' });
  t.truthy(directWriter(b), 'the project logger can be mirrored');
  const plain = new DecisionLog(a, { sampleRate: 1 });
  // Force the generic path on the first log for comparison.
  (plain as unknown as { direct: undefined }).direct = undefined;
  const fast = new DecisionLog(b, { sampleRate: 1 });
  for (const r of [record('/a?token=secret'), record('/x'), record('/ü/"odd"\\path', { requestId: undefined, latencyUs: 0.5 })]) {
    plain.record(r);
    fast.record(r);
  }
  t.is(direct.lines().length, 0, 'batched until the end of the turn');
  fast.flush();
  t.deepEqual(untimed(direct.lines()), untimed(viaPino.lines()));
  const parsed = JSON.parse(direct.lines()[0]!) as Record<string, unknown>;
  t.like(parsed, { level: 'info', component: 'authz-decision', decision_id: 'id-1', path: '/a', outcome: 'allow', policy: 'shop/allow-all', rule: 0, msg: 'authz decision' });
  t.false(direct.lines().join('').includes('secret'));
  t.like(JSON.parse(direct.lines()[1]!), { dry_run_outcome: 'deny', dry_run_changed: true, dry_run_policy: 'shop/try', msg: 'authz decision (a dry-run policy would change it)' });
});

test('loggers the direct writer cannot mirror fall back to logger.info', (t) => {
  const s = sink();
  const withMixin = pino({ mixin: () => ({ extra: 1 }) }, s.stream);
  t.is(directWriter(withMixin as unknown as Logger), undefined);
  const withSerializer = pino({ serializers: { path: () => 'x' } }, s.stream);
  t.is(directWriter(withSerializer as unknown as Logger), undefined);
  const withRedaction = pino({ redact: ['principal'] }, s.stream);
  t.is(directWriter(withRedaction as unknown as Logger), undefined);
  new DecisionLog(withRedaction as unknown as Logger, { sampleRate: 1 }).record(record('/a'));
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

test('batched lines go out at the end of the event-loop turn without an explicit flush', async (t) => {
  const s = sink();
  const log = new DecisionLog(createLogger({ destination: s.stream }), { sampleRate: 1 });
  log.record(record('/a'));
  log.record(record('/b'));
  t.is(s.lines().length, 0);
  await new Promise((resolve) => setImmediate(resolve));
  t.is(s.lines().length, 2);
});

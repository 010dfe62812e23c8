import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { bufferedDestination, createLogger, droppedLogLines, infoLineWriter } from '../../src/observability/logger.js';
import { lineSink } from '../helpers/logs.js';


test('infoLineWriter writes the bytes pino writes for the same flat fields (time aside)', (t) => {
  const s = lineSink();
  const logger = createLogger({ destination: s.stream }).child({ component: 'authz-decision' });
  const write = infoLineWriter(logger);
  const cases = [
    { a: 'plain', b: 1, c: true, d: undefined, e: false, f: 0.5 },
    { quote: 'say "hi"\\ \n\t\u0001', unicode: '/ü/漢字/😀', long: 'x'.repeat(300), key: 'secret', token: 'also secret', n: -3 },
    {},
    { nan: Number.NaN, inf: Number.POSITIVE_INFINITY },
    { headers: { 'x-a': 'hmac-sha256:00', 'x-"q"': 'u\u00fc\n' }, list: ['a', 'b"'], empty: {} },
  ];
  for (const fields of cases) {
    logger.info(fields, 'msg "quoted" ü');
    write(fields, 'msg "quoted" ü');
  }
  const lines = s.lines().map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
  t.is(lines.length, cases.length * 2);
  for (let i = 0; i < cases.length; i++) t.is(lines[2 * i + 1], lines[2 * i], `case ${i}`);
  t.false(lines.join('').includes('secret'));
});

test('infoLineWriter honours the level and falls back to pino for a logger it did not make', (t) => {
  const s = lineSink();
  const logger = createLogger({ destination: s.stream, level: 'warn' });
  infoLineWriter(logger)({ a: 1 }, 'not written');
  t.is(s.lines().length, 0);
  logger.level = 'info';
  infoLineWriter(logger)({ a: 1 }, 'written');
  t.is(s.lines().length, 1);
  t.notThrows(() => infoLineWriter(createLogger({ level: 'silent', pretty: false }))({ a: 1 }, 'silent'));
});

test('the buffered destination drops and counts lines past its bound, and flushes the rest synchronously', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-log-'));
  const file = path.join(dir, 'log');
  const fd = fs.openSync(file, 'w');
  const dest = bufferedDestination({ dest: fd, maxLength: 1000 });
  const logger = createLogger({ destination: dest });
  const before = droppedLogLines();
  // All in one synchronous burst: no asynchronous write can finish in between.
  for (let i = 0; i < 100; i++) logger.info({ i }, 'line');
  const dropped = droppedLogLines() - before;
  dest.flushSync();
  const written = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  t.true(dropped > 0, 'the bound is hit');
  t.is(written.length + dropped, 100, 'every line is either written or counted as dropped');
  t.true(written.every((l) => (JSON.parse(l) as { msg: string }).msg === 'line'));
  dest.end(); // closes the fd and stops the periodic flush
  fs.rmSync(dir, { recursive: true, force: true });
});

test('lines still gathered for the next chunk reach stdout when the process exits at once', (t) => {
  // 300 decision-style lines and 1 pino line, then process.exit in the same turn: nothing has been
  // handed to SonicBoom's asynchronous write yet, so only the exit flush can write them.
  const logger = new URL('../../src/observability/logger.js', import.meta.url).href;
  const script = `
    import { createLogger, infoLineWriter } from ${JSON.stringify(logger)};
    const log = createLogger({ pretty: false }).child({ component: 'authz-decision' });
    const line = infoLineWriter(log);
    for (let i = 0; i < 300; i++) line({ i, path: '/p/' + i }, 'decision');
    log.info({ last: true }, 'pino line');
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { i?: number; msg: string });
  t.is(lines.length, 301);
  t.deepEqual(lines.slice(0, 300).map((l) => l.i), Array.from({ length: 300 }, (_, i) => i), 'in order, none missing');
  t.is(lines[300]!.msg, 'pino line');
});

import test from 'ava';
import { terminalLine } from '../../src/observability/terminal-line.js';

test('terminal line: fields the message already states are dropped; the rest follow it', (t) => {
  const line = terminalLine({ level: 'info', time: 'x', component: 'svid', event: 'svid_issued', msg: 'SVID issued for spiffe://td/ns/a/sa/b', spiffeId: 'spiffe://td/ns/a/sa/b', serial: 'abc', renewInMs: 1200 });
  t.is(line, '(svid) SVID issued for spiffe://td/ns/a/sa/b  serial=abc renewInMs=1200');
});

test('terminal line: nested values are left out, an error shows its message, long values are cut', (t) => {
  const line = terminalLine({ msg: 'CA unreachable', err: { message: 'connect ECONNREFUSED', stack: 'at ...' }, headers: { a: '1' }, token: 'x'.repeat(100) });
  t.is(line, `CA unreachable  err=connect ECONNREFUSED token=${'x'.repeat(59)}…`);
});

test('terminal line: past 120 characters of fields the rest is counted, not shown', (t) => {
  const record: Record<string, unknown> = { msg: 'm' };
  for (let i = 0; i < 10; i++) record[`field${i}`] = 'v'.repeat(30);
  const line = terminalLine(record);
  t.regex(line, /\(\+7 more\)$/);
  t.true(line.length < 160, line);
});

import { Writable } from 'node:stream';
import test from 'ava';
import { main } from '../../src/cli/router.js';

function io(env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (c: Buffer, _e, cb) => (f(c.toString()), cb()) });
  return { io: { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env }, out: () => out, err: () => err };
}

test('a stray argument is an error (exit 2), not silently dropped', async (t) => {
  const r = io();
  t.is(await main(['dev', 'demo', '--print-config'], r.io), 2);
  t.regex(r.err(), /unexpected argument "demo"/);
  t.is(r.out(), '');
});

test('--help works whatever the environment holds', async (t) => {
  const r = io({ MESHID_LOG_LEVEL: 'verbose' });
  t.is(await main(['agent', '--help'], r.io), 0);
  t.regex(r.out(), /--ca-address HOST:PORT/);
});

test('meshid --version prints the package version', async (t) => {
  const r = io();
  t.is(await main(['--version'], r.io), 0);
  t.regex(r.out(), /^meshid \d+\.\d+\.\d+\S*\n$/);
});

test('a mistyped command gets a suggestion: meshid agnet -> did you mean "meshid agent"', async (t) => {
  const r = io();
  t.is(await main(['agnet'], r.io), 2);
  t.regex(r.err(), /^meshid: unknown command "agnet" \(did you mean "meshid agent"\?\)\n/);
  const sub = io();
  t.is(await main(['svid', 'verfy'], sub.io), 2);
  t.is(sub.err(), 'meshid svid: expected one of: verify (did you mean "meshid svid verify"?)\n');
  const far = io();
  await main(['frobnicate'], far.io);
  t.regex(far.err(), /^meshid: unknown command "frobnicate"\n/, 'no suggestion when nothing is close');
});

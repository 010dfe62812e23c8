/**
 * Cross-field configuration rules through the real router, in process: each command refuses a
 * combination that cannot work with exit 2, naming every key and its source, before it reads a
 * file or binds a socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import test from 'ava';
import { main } from '../../src/cli/router.js';
import { makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';

function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (c: Buffer, _e, cb) => (f(c.toString()), cb()) });
  const io = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env };
  return main(argv, io).then((status) => ({ status, stdout: out, stderr: err }));
}

const TD = 'example.org';
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
const AGENT = ['agent', '--ca-address=127.0.0.1:1', '--ca-bundle=/nonexistent/ca.pem', '--token-file=/nonexistent/token'];

test('agent: --authz-socket without --policy-dir exits 2 naming both keys, before anything binds: no socket file is left', async (t) => {
  const dir = tempDir(t);
  // Every file the agent reads is valid, so only the combination can stop it.
  const bundle = path.join(dir, 'ca.pem');
  fs.writeFileSync(bundle, makeRoot(TD).pem);
  fs.writeFileSync(path.join(dir, 'token'), 'token-0123456789\n');
  const sds = path.join(dir, 'sds.sock');
  const authz = path.join(dir, 'authz.sock');
  const r = await run(
    ['agent', '--ca-address=127.0.0.1:1', `--ca-bundle=${bundle}`, `--token-file=${path.join(dir, 'token')}`, `--spiffe-id=${ORDERS}`, `--trust-domain=${TD}`, `--sds-socket=${sds}`, '--admin-listen=127.0.0.1:0'],
    { MESHID_AUTHZ_SOCKET: authz },
  );
  t.is(r.status, 2, r.stderr);
  t.is(r.stderr.split('\n')[0], 'meshid agent: authz-socket (env MESHID_AUTHZ_SOCKET), authz-listen (unset), policy-dir (unset): ext_authz needs policy-dir, the directory of AuthorizationPolicy files it decides by');
  t.is(r.stdout, '');
  t.false(fs.existsSync(sds), 'the SDS socket was never bound');
  t.false(fs.existsSync(authz));
});

test('agent: renew-fraction and renew-jitter that put the renewal point outside the lifetime exit 2 naming both', async (t) => {
  const r = await run([...AGENT, '--renew-fraction=0.2', '--renew-jitter=0.3']);
  t.is(r.status, 2);
  t.regex(r.stderr, /^meshid agent: renew-fraction \(flag --renew-fraction\), renew-jitter \(flag --renew-jitter\): the renewal point 0\.2 ± 0\.3 of the lifetime must stay inside \(0, 1\)\n/);
});

test('agent: a --spiffe-id outside --trust-domain exits 2 naming both keys and their sources', async (t) => {
  const r = await run([...AGENT, `--spiffe-id=${ORDERS}`], { MESHID_TRUST_DOMAIN: 'other.org' });
  t.is(r.status, 2);
  t.is(r.stderr.split('\n')[0], `meshid agent: spiffe-id (flag --spiffe-id), trust-domain (env MESHID_TRUST_DOMAIN): ${ORDERS} is not in the trust domain other.org`);
});

test('ca: --ttl longer than --max-ttl exits 2 naming both keys and their sources', async (t) => {
  const r = await run(['ca', '--ttl', '2d', '--max-ttl', '1d']);
  t.is(r.status, 2, r.stderr);
  t.is(r.stderr.split('\n')[0], 'meshid ca: ttl (flag --ttl), max-ttl (flag --max-ttl): the default lifetime 2d is longer than the longest one issued, 1d');
  const withDefault = await run(['ca', '--ttl', '2d']);
  t.is(withDefault.status, 2);
  t.regex(withDefault.stderr, /^meshid ca: ttl \(flag --ttl\), max-ttl \(default\): /);
});

test('ca: --jwt-keys without --jwt-issuer, and --jwt-issuer without --jwt-keys, exit 2 before any file is read', async (t) => {
  const keys = await run(['ca', '--jwt-keys', '/nonexistent/keys.json']);
  t.is(keys.status, 2);
  t.regex(keys.stderr, /^meshid ca: jwt-keys \(flag --jwt-keys\), jwt-issuer \(unset\): jwt-keys needs jwt-issuer/);
  const issuer = await run(['ca'], { MESHID_JWT_ISSUER: 'https://kubernetes.default.svc' });
  t.is(issuer.status, 2);
  t.regex(issuer.stderr, /^meshid ca: jwt-issuer \(env MESHID_JWT_ISSUER\), jwt-keys \(unset\): jwt-issuer is set but jwt-keys is not/);
});

test('a setting without effect in the combination given is warned about on stderr, naming its source', async (t) => {
  const r = await run(['dev', '--demo-interval=5s', '--print-config']);
  t.is(r.status, 0, r.stderr);
  t.is(r.stderr, 'meshid dev: warning: demo-interval (flag --demo-interval): has no effect without --demo\n');
  const quiet = await run(['dev', '--demo', '--demo-interval=5s', '--print-config']);
  t.is(quiet.stderr, '');
});

/** The --svid-dir file sink over a test identity: atomic files, modes, rotation, hook, signal, deleted files. */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { SvidFileSink } from '../../src/workload/file-sink.js';
import { agentOptions, agentRules } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { captureLogs } from '../helpers/logs.js';
import { opensslVerify } from '../helpers/openssl.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { TestIdentitySource } from '../helpers/test-identity-source.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually, pumpUntil } from '../sds/support.js';
import { NamedCertificates } from '../../src/sds/named-certs.js';
import { chainPem, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';

function setup(t: Parameters<typeof tempDir>[0], config: { hook?: string; signal?: NodeJS.Signals; pidFile?: string } = {}) {
  const dir = tempDir(t, 'meshid-sink-');
  const out = path.join(dir, 'svid');
  const clock = new FakeClock(Date.now());
  const source = new TestIdentitySource({ clock, ready: false });
  const logs = captureLogs();
  const sink = new SvidFileSink({ dir: out, ...config }, { source, clock, logger: logs.logger });
  t.teardown(() => sink.stop());
  return { dir, out, clock, source, sink, logs };
}

const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');

/** Whether the key in dir/svid.key belongs to the leaf in dir/svid.pem, by OpenSSL. */
function keyMatches(dir: string): boolean {
  const a = spawnSync('openssl', ['x509', '-noout', '-pubkey', '-in', path.join(dir, 'svid.pem')], { encoding: 'utf8' }).stdout;
  const b = spawnSync('openssl', ['pkey', '-pubout', '-in', path.join(dir, 'svid.key')], { encoding: 'utf8' }).stdout;
  return a !== '' && a === b;
}

test('svid.pem, svid.key (0600) and bundle.pem appear with the first SVID, pass openssl verify -x509_strict, and follow every rotation with no temporary file left', async (t) => {
  const s = setup(t);
  await s.sink.start();
  t.deepEqual(fs.readdirSync(s.out), [], 'nothing before an SVID exists');
  s.source.publishBundle();
  for (let i = 0; i < 3; i++) {
    const svid = s.source.rotate();
    t.is(read(s.out, 'svid.pem'), svid.certChainPem);
    t.is(read(s.out, 'svid.key'), svid.privateKeyPem);
    t.is(fs.statSync(path.join(s.out, 'svid.key')).mode & 0o777, 0o600);
    t.is(fs.statSync(path.join(s.out, 'svid.pem')).mode & 0o777, 0o644);
    t.is(fs.statSync(s.out).mode & 0o777, 0o700);
    t.true(keyMatches(s.out));
    const v = opensslVerify(s.dir, { roots: read(s.out, 'bundle.pem'), leaf: read(s.out, 'svid.pem') });
    t.true(v.ok, v.output);
    t.deepEqual(fs.readdirSync(s.out).sort(), ['bundle.pem', 'svid.key', 'svid.pem']);
  }
  t.is(s.sink.writes, 3);
  const root = s.source.addRoot();
  t.true(read(s.out, 'bundle.pem').includes(root.pem.trim()), 'a root change alone rewrites the bundle');
  t.is(s.sink.writes, 4);
});

test('the hook runs after all three files are in place, one run at a time; rotations during a run wait for it, so every run sees a key that matches the certificate', async (t) => {
  const dirForLog = tempDir(t);
  const log = path.join(dirForLog, 'hook.log');
  // The hook compares the public keys of svid.pem and svid.key with OpenSSL and logs the result.
  const hook = `a=$(openssl x509 -noout -pubkey -in "$MESHID_SVID_DIR/svid.pem"); b=$(openssl pkey -pubout -in "$MESHID_SVID_DIR/svid.key"); ` +
    `if [ "$a" = "$b" ] && [ -s "$MESHID_SVID_DIR/bundle.pem" ]; then echo match >> ${log}; else echo MISMATCH >> ${log}; fi`;
  const s = setup(t, { hook });
  await s.sink.start();
  s.source.publishBundle();
  for (let i = 0; i < 4; i++) {
    s.source.rotate();
    await new Promise((r) => setTimeout(r, 30));
  }
  const last = s.source.latestSvid()!;
  await eventually(() => fs.existsSync(path.join(s.out, 'svid.pem')) && read(s.out, 'svid.pem') === last.certChainPem, 10_000, 'the last rotation to be written');
  await eventually(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').trim().split('\n').length === s.sink.writes, 10_000, 'a hook run per write');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  t.true(lines.length >= 2 && lines.length <= 4, `rotations during a run are written together after it: ${lines.length} runs`);
  t.deepEqual([...new Set(lines)], ['match']);
});

test('--svid-signal reaches the workload in --svid-pid-file after each write; a deleted file is written again', async (t) => {
  const dir = tempDir(t);
  const got = path.join(dir, 'got');
  const child = spawn('/bin/sh', ['-c', `trap 'echo hup >> ${got}' HUP; echo ready > ${got}.ready; while :; do sleep 0.05; done`], { stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  await eventually(() => fs.existsSync(`${got}.ready`), 5000, 'the workload to start');
  const pidFile = path.join(dir, 'app.pid');
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  const s = setup(t, { signal: 'SIGHUP', pidFile });
  await s.sink.start();
  s.source.publishBundle();
  s.source.rotate();
  await eventually(() => fs.existsSync(got) && fs.readFileSync(got, 'utf8').split('\n').filter(Boolean).length === 1, 5000, 'the first SIGHUP');
  s.source.rotate();
  await eventually(() => fs.readFileSync(got, 'utf8').split('\n').filter(Boolean).length === 2, 5000, 'the second SIGHUP');

  const before = read(s.out, 'svid.key');
  fs.rmSync(path.join(s.out, 'svid.key'));
  fs.rmSync(path.join(s.out, 'bundle.pem'));
  await eventually(() => {
    void s.clock.advance(100);
    return fs.existsSync(path.join(s.out, 'svid.key')) && fs.existsSync(path.join(s.out, 'bundle.pem'));
  }, 10_000, 'the deleted files to come back');
  t.is(read(s.out, 'svid.key'), before);
  t.is(fs.statSync(path.join(s.out, 'svid.key')).mode & 0o777, 0o600);
  t.true(s.logs.lines.some((l) => l.msg === 'an SVID file was deleted; written again'));
  t.is(s.sink.notifications, 2, 'restoring the same content does not signal again');
});

test('sink flags: hook or signal without --svid-dir, a signal without a pid file, and a bad signal name are refused before anything starts', (t) => {
  const base = ['--ca-address=127.0.0.1:1', '--ca-bundle=/b', '--token-file=/t'];
  const load = (...argv: string[]) => loadConfig(agentOptions, { argv: [...base, ...argv], fileAndEnv: false, rules: agentRules });
  t.throws(() => load('--svid-hook=true'), { message: /need --svid-dir/ });
  t.throws(() => load('--svid-dir=/d', '--svid-signal=SIGHUP'), { message: /--svid-signal and --svid-pid-file go together/ });
  t.throws(() => load('--svid-dir=/d', '--svid-signal=NOPE', '--svid-pid-file=/p'), { message: /expected a signal name/ });
  t.throws(() => load('--svid-dir=/d', '--svid-signal=KILL', '--svid-pid-file=/p'), { message: /expected a signal name/ });
  t.is(load('--svid-dir=/d', '--svid-signal=hup', '--svid-pid-file=/p').config.svidSignal, 'SIGHUP');
});

test('named certificates (--named-cert) are written as NAME.pem and NAME.key (0600) with the SVID files, and rewritten when their files change', async (t) => {
  const dir = tempDir(t, 'meshid-sink-');
  const out = path.join(dir, 'svid');
  const clock = new FakeClock(Date.now());
  const partnerRoot = makeRoot('partner.example');
  const inter = makeIntermediate(partnerRoot, 'partner.example');
  const leaf = makeLeaf(inter, 'spiffe://partner.example/client/shop');
  const certFile = path.join(dir, 'partner.crt');
  const keyFile = path.join(dir, 'partner.key');
  fs.writeFileSync(certFile, chainPem(leaf, inter));
  fs.writeFileSync(keyFile, leaf.key.privateKey.export({ type: 'sec1', format: 'pem' }));
  const logs = captureLogs();
  const named = new NamedCertificates([{ name: 'partner', certPath: certFile, keyPath: keyFile }], { clock, logger: logs.logger, debounceMs: 50 });
  await named.start();
  t.teardown(() => named.stop());
  const source = new TestIdentitySource({ clock });
  const sink = new SvidFileSink({ dir: out }, { source, named, clock, logger: logs.logger });
  t.teardown(() => sink.stop());
  await sink.start();

  t.deepEqual(fs.readdirSync(out).sort(), ['bundle.pem', 'partner.key', 'partner.pem', 'svid.key', 'svid.pem']);
  t.is(read(out, 'partner.pem'), chainPem(leaf, inter));
  t.is(fs.statSync(path.join(out, 'partner.key')).mode & 0o777, 0o600);
  t.is(fs.statSync(path.join(out, 'partner.pem')).mode & 0o777, 0o644);
  const v = opensslVerify(dir, { roots: partnerRoot.pem, leaf: read(out, 'partner.pem'), intermediates: inter.pem });
  t.true(v.ok, v.output);
  const x509 = spawnSync('openssl', ['x509', '-in', path.join(out, 'partner.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  t.is(x509.status, 0, x509.stderr);
  t.regex(x509.stdout, /URI:spiffe:\/\/partner\.example\/client\/shop/);
  const pub = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' }).stdout;
  t.is(pub(['pkey', '-pubout', '-in', path.join(out, 'partner.key')]), pub(['x509', '-noout', '-pubkey', '-in', path.join(out, 'partner.pem')]));

  const next = makeLeaf(partnerRoot, 'spiffe://partner.example/client/shop');
  fs.writeFileSync(keyFile, next.key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(certFile, next.pem);
  await pumpUntil(clock, () => fs.readFileSync(path.join(out, 'partner.pem'), 'utf8') === next.pem, 'the new pair in the sink');
  t.true(new crypto.X509Certificate(next.der).checkPrivateKey(crypto.createPrivateKey(read(out, 'partner.key'))));
  t.false(fs.readdirSync(out).some((f) => f.endsWith('.tmp')));
});

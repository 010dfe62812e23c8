/** Named certificates (--named-cert): served over SDS as named:NAME, re-read on change, the last good pair kept on a bad edit. */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { agentOptions, agentRules } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { isMeshidError } from '../../src/lib/errors.js';
import { NamedCertificates } from '../../src/sds/named-certs.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogs } from '../helpers/logs.js';
import { chainPem, type Issued, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { CountingMetrics, pumpUntil, startTestServer } from './support.js';

const sec1 = (i: Issued) => i.key.privateKey.export({ type: 'sec1', format: 'pem' }) as string;

/** A partner CA's client certificate for us, written as an operator would drop it: chain file and SEC1 key file. */
function writePair(dir: string, leaf: Issued, inter?: Issued, key = sec1(leaf)): { cert: string; key: string } {
  const files = { cert: path.join(dir, 'partner.crt'), key: path.join(dir, 'partner.key') };
  fs.writeFileSync(files.key, key);
  fs.writeFileSync(files.cert, inter ? chainPem(leaf, inter) : leaf.pem);
  return files;
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t, 'meshid-named-');
  const partnerRoot = makeRoot('partner.example');
  const inter = makeIntermediate(partnerRoot, 'partner.example');
  const leaf = makeLeaf(inter, 'spiffe://partner.example/client/shop');
  const files = writePair(dir, leaf, inter);
  const clock = new FakeClock(Date.now());
  const logs = captureLogs();
  const metrics = new CountingMetrics();
  const named = new NamedCertificates([{ name: 'partner', certPath: files.cert, keyPath: files.key }], { clock, logger: logs.logger, metrics, debounceMs: 50 });
  await named.start();
  t.teardown(() => named.stop());
  const s = await startTestServer(t, { clock, named });
  return { dir, files, clock, logs, metrics, named, s, partnerRoot, inter, leaf };
}

test('named:NAME serves the pair (key as PKCS#8); replacing the files pushes the new pair to every open stream', async (t) => {
  const { s, files, clock, leaf, inter, partnerRoot, named } = await setup(t);
  const c1 = s.client();
  const c2 = s.client();
  const watches = [c1.subscribe('named:partner'), c2.subscribe('named:partner')];
  const first = await Promise.all(watches.map((w) => w.waitFor(() => true)));
  for (const f of first) {
    t.is(f.secret.name, 'named:partner');
    t.is(f.secret.tlsCertificate?.certificateChain, chainPem(leaf, inter));
    t.regex(f.secret.tlsCertificate!.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    t.true(new crypto.X509Certificate(leaf.der).checkPrivateKey(crypto.createPrivateKey(f.secret.tlsCertificate!.privateKey)));
  }

  const next = makeLeaf(partnerRoot, 'spiffe://partner.example/client/shop');
  writePair(path.dirname(files.cert), next);
  await pumpUntil(clock, () => watches.every((w) => w.latest()!.secret.tlsCertificate?.certificateChain === next.pem), 'the new pair on both streams');
  for (const w of watches) {
    t.not(w.latest()!.version, first[0]!.version);
    t.is(w.accepted, 2);
    t.deepEqual(w.nacks, []);
  }
  t.is(named.get('partner')!.certChainPem, next.pem);
  t.is(named.status()[0]!.notAfter, next.cert.notAfter.toISOString());
  t.is(s.server.usage().fileWatches, 0, 'the pair is watched by its source, not once per SDS feed');
});

test('a bad edit (key of another certificate, garbage, an expired certificate) keeps the last good pair and says why; the fix is pushed', async (t) => {
  const { s, files, clock, logs, metrics, named, partnerRoot } = await setup(t);
  const w = s.client().subscribe('named:partner');
  const good = await w.nextUpdate();
  const dir = path.dirname(files.cert);
  const warnings = () => logs.lines.filter((l) => String(l.msg).includes('still serving the last good pair'));

  const a = makeLeaf(partnerRoot, 'spiffe://partner.example/a');
  const b = makeLeaf(partnerRoot, 'spiffe://partner.example/b');
  writePair(dir, a, undefined, sec1(b));
  await pumpUntil(clock, () => metrics.reloadFailures >= 1, 'the mismatched key to be noticed');
  t.like(warnings()[0], { namedCert: 'partner', servedVersion: good.version });
  t.regex(String(warnings()[0]!.err), /^partner: key file .*partner\.key does not match the certificate in .*partner\.crt$/);
  t.regex(named.status()[0]!.lastError ?? '', /does not match/);

  fs.writeFileSync(files.cert, 'this is not a certificate\n');
  await pumpUntil(clock, () => metrics.reloadFailures >= 2, 'the garbage to be noticed');
  t.regex(String(warnings()[1]!.err), /^partner: certificate file .*partner\.crt/);

  const old = makeLeaf(partnerRoot, 'spiffe://partner.example/old', { notBefore: new Date(clock.now() - 7_200_000), notAfter: new Date(clock.now() - 3_600_000) });
  writePair(dir, old);
  await pumpUntil(clock, () => metrics.reloadFailures >= 3, 'the expired certificate to be noticed');
  t.regex(String(warnings()[2]!.err), /partner\.crt expired at /);

  t.is(w.accepted, 1, 'nothing unusable was pushed');
  t.is(named.get('partner')!.version, good.version);
  const late = await s.client().subscribe('named:partner').nextUpdate();
  t.is(late.version, good.version, 'a new stream gets the last good pair');

  const fixed = makeLeaf(partnerRoot, 'spiffe://partner.example/fixed');
  writePair(dir, fixed);
  await pumpUntil(clock, () => w.accepted === 2, 'the fix to be pushed');
  t.is(w.latest()!.secret.tlsCertificate?.certificateChain, fixed.pem);
  t.is(named.status()[0]!.lastError, undefined);
  t.false(JSON.stringify(logs.lines).includes('PRIVATE KEY'), 'a private key reached the logs');
});

test('named: names the agent does not hold are NOT_FOUND, listing those it holds', async (t) => {
  const { s } = await setup(t);
  const w = s.client({ reconnect: false }).subscribe('named:other');
  const status = await w.nextStatus();
  t.is(status.code, grpc.status.NOT_FOUND);
  t.regex(status.details, /unknown SDS secret "named:other": this agent holds the named certificates "named:partner"/);
  const none = await startTestServer(t);
  const st = await none.client({ reconnect: false }).subscribe('named:partner').nextStatus();
  t.regex(st.details, /holds no named certificates \(--named-cert NAME=CERT,KEY\)/);
});

test('a pair that is unusable at start fails the start, naming the pair and the file', async (t) => {
  const dir = tempDir(t);
  const root = makeRoot('partner.example');
  const files = writePair(dir, makeLeaf(root), undefined, sec1(makeLeaf(root)));
  const named = new NamedCertificates([{ name: 'partner', certPath: files.cert, keyPath: files.key }], { clock: new FakeClock(), logger: captureLogs().logger });
  const e = await t.throwsAsync(named.start());
  t.true(isMeshidError(e));
  t.regex(e!.message, /^partner: key file .*partner\.key does not match/);
  const missing = new NamedCertificates([{ name: 'gone', certPath: path.join(dir, 'nope.crt'), keyPath: files.key }], { clock: new FakeClock(), logger: captureLogs().logger });
  t.regex((await t.throwsAsync(missing.start()))!.message, /^gone: cannot read certificate file .*nope\.crt: no such file/);
  const fifo = path.join(dir, 'fifo');
  // A FIFO (or a device) is refused without blocking: the hardened reader is the one used.
  if (spawnSync('mkfifo', [fifo]).status === 0) {
    const f = new NamedCertificates([{ name: 'fifo', certPath: fifo, keyPath: files.key }], { clock: new FakeClock(), logger: captureLogs().logger });
    t.regex((await t.throwsAsync(f.start()))!.message, /it is a FIFO; only regular files are served/);
  }
});

test('--named-cert: flags (repeatable), the config file (strings or {name, cert, key}), and clear errors', (t) => {
  const base = ['--ca-address=127.0.0.1:1', '--ca-bundle=/b.pem', '--token-file=/t', '--spiffe-id=spiffe://cluster.local/ns/a/sa/b'];
  const load = (argv: string[], file?: string) =>
    loadConfig(agentOptions, { argv: [...base, ...(file ? ['--config=/c.yaml'] : []), ...argv], env: {}, rules: agentRules, readFile: () => file ?? '' }).config;
  t.deepEqual(load(['--named-cert', 'partner=/etc/p/tls.crt,/etc/p/tls.key', '--named-cert=db=/d/c.pem,/d/k.pem']).namedCert, [
    { name: 'partner', certPath: '/etc/p/tls.crt', keyPath: '/etc/p/tls.key' },
    { name: 'db', certPath: '/d/c.pem', keyPath: '/d/k.pem' },
  ]);
  t.deepEqual(load([], 'named-cert:\n  - partner=/p/c,/p/k\n  - { name: db, cert: /d/c, key: /d/k }\n').namedCert.map((s) => s.name), ['partner', 'db']);
  t.deepEqual(load([]).namedCert, []);
  const fromEnv = loadConfig(agentOptions, { argv: base, env: { MESHID_NAMED_CERT: 'a=/a/c,/a/k,b=/b/c,/b/k' }, rules: agentRules }).config.namedCert;
  t.deepEqual(fromEnv.map((s) => [s.name, s.keyPath]), [['a', '/a/k'], ['b', '/b/k']]);
  const problem = (argv: string[], file?: string) => {
    const e = t.throws(() => load(argv, file));
    return e!.message;
  };
  t.regex(problem(['--named-cert', 'partner=/p/c']), /named-cert \(flag --named-cert\): expected NAME=CERT_PATH,KEY_PATH, got "partner=\/p\/c"/);
  t.regex(problem(['--named-cert', 'partner=c.pem,/p/k']), /partner: path "c.pem" must be absolute/);
  t.regex(problem(['--named-cert', 'svid=/p/c,/p/k']), /name "svid" is taken by the file sink's own svid.pem/);
  t.regex(problem(['--named-cert', 'a b=/p/c,/p/k']), /name "a b": use 1 to 64 letters/);
  t.regex(problem(['--named-cert', 'p=/a,/b', '--named-cert', 'p=/c,/d']), /named-cert \(flag --named-cert\): the name "p" is given twice/);
  t.regex(problem([], 'named-cert:\n  - { name: db, cert: /d/c }\n'), /expected \{name, cert, key\} strings/);
});

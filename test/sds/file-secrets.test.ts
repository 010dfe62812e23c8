import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { MAX_SECRET_FILE_BYTES } from '../../src/sds/file-secrets.js';
import { writeK8sVolume } from '../helpers/k8s-volume.js';
import { chainPem, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { pumpUntil, startTestServer } from './support.js';

function ecKeyPem(key: crypto.KeyObject): string {
  // SEC1 ("EC PRIVATE KEY"), as many tools write it; the server serves PKCS#8.
  return key.export({ type: 'sec1', format: 'pem' }) as string;
}

test('file-cert serves the chain and the key (as PKCS#8) from files; file-root serves the roots', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  const root = makeRoot('files.test');
  const inter = makeIntermediate(root, 'files.test');
  const leaf = makeLeaf(inter, 'spiffe://files.test/gateway');
  fs.writeFileSync(path.join(dir, 'cert.pem'), `# issued for the gateway\n${chainPem(leaf, inter)}`);
  fs.writeFileSync(path.join(dir, 'key.pem'), ecKeyPem(leaf.key.privateKey));
  fs.writeFileSync(path.join(dir, 'ca.pem'), root.pem);
  const c = s.client();
  const certName = `file-cert:${dir}/cert.pem~${dir}/key.pem`;
  const rootName = `file-root:${dir}/ca.pem`;
  const [cert, roots] = await Promise.all([c.subscribe(certName).nextUpdate(), c.subscribe(rootName).nextUpdate()]);
  t.is(cert.secret.name, certName);
  t.is(cert.secret.tlsCertificate?.certificateChain, chainPem(leaf, inter), 'text outside PEM blocks is dropped');
  t.regex(cert.secret.tlsCertificate!.privateKey, /^-----BEGIN PRIVATE KEY-----/);
  t.true(new crypto.X509Certificate(leaf.der).checkPrivateKey(crypto.createPrivateKey(cert.secret.tlsCertificate!.privateKey)));
  t.is(roots.secret.name, rootName);
  t.is(roots.secret.validationContext?.trustedCa, root.pem);
  t.is(s.server.usage().fileWatches, 2);
  t.false(JSON.stringify(s.logs()).includes('PRIVATE KEY'), 'a private key reached the logs');
});

test('a Kubernetes ..data swap of a mounted Secret reaches every stream on the file secrets', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  const root = makeRoot('files.test');
  const leaf1 = makeLeaf(root, 'spiffe://files.test/a');
  writeK8sVolume(dir, { 'tls.crt': leaf1.pem, 'tls.key': ecKeyPem(leaf1.key.privateKey), 'ca.crt': root.pem });
  const certName = `file-cert:${dir}/tls.crt~${dir}/tls.key`;
  const c1 = s.client();
  const c2 = s.client();
  const certs = [c1.subscribe(certName), c2.subscribe(certName)];
  const roots = c1.subscribe(`file-root:${dir}/ca.crt`);
  const first = await Promise.all(certs.map((w) => w.waitFor(() => true)));
  await roots.waitFor(() => true);
  t.is(s.server.usage().fileWatches, 2, 'streams on the same file secret share one watch');

  const root2 = makeRoot('files.test', { commonName: 'second root' });
  const leaf2 = makeLeaf(root2, 'spiffe://files.test/a');
  writeK8sVolume(dir, { 'tls.crt': leaf2.pem, 'tls.key': ecKeyPem(leaf2.key.privateKey), 'ca.crt': root.pem + root2.pem });
  await pumpUntil(s.clock, () => certs.every((w, i) => w.latest()!.version !== first[i]!.version) && roots.accepted === 2, 'the swap to be served');
  for (const w of certs) t.is(w.latest()!.secret.tlsCertificate?.certificateChain, leaf2.pem);
  t.is(roots.latest()!.secret.validationContext?.trustedCa, root.pem + root2.pem);

  // A second swap, surely after the watch is up (the first could have been caught by the re-read on ready).
  const leaf3 = makeLeaf(root2, 'spiffe://files.test/a');
  writeK8sVolume(dir, { 'tls.crt': leaf3.pem, 'tls.key': ecKeyPem(leaf3.key.privateKey), 'ca.crt': root2.pem });
  await pumpUntil(s.clock, () => certs.every((w) => w.latest()!.secret.tlsCertificate?.certificateChain === leaf3.pem) && roots.accepted === 3, 'the second swap');
  t.is(roots.latest()!.secret.validationContext?.trustedCa, root2.pem);
  t.deepEqual([...certs.flatMap((w) => w.nacks), ...roots.nacks], []);
});

test('a bad edit keeps the last good content, is logged and counted; the fix is served', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  const file = path.join(dir, 'ca.pem');
  const root = makeRoot('files.test');
  fs.writeFileSync(file, root.pem);
  const w = s.client().subscribe(`file-root:${file}`);
  const good = await w.nextUpdate();

  fs.writeFileSync(file, '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n');
  await pumpUntil(s.clock, () => s.metrics.reloadFailures >= 1, 'the bad edit to be noticed');
  const warning = s.logs().find((l) => String(l.msg).includes('still serving the last good content'));
  t.truthy(warning);
  t.is(warning!.resource, `file-root:${file}`);
  t.regex(String(warning!.err), /root file .*ca\.pem: PEM block "CERTIFICATE" is not valid base64/);
  t.is(warning!.servedVersion, good.version);
  t.is(w.accepted, 1, 'the bad content was pushed');

  // A new stream on the same secret still gets the last good content.
  const late = await s.client().subscribe(`file-root:${file}`).nextUpdate();
  t.is(late.version, good.version);

  const root2 = makeRoot('files.test', { commonName: 'fixed' });
  fs.writeFileSync(file, root2.pem);
  await pumpUntil(s.clock, () => w.accepted === 2, 'the fixed file to be served');
  t.is(w.latest()!.secret.validationContext?.trustedCa, root2.pem);
});

test('a file that cannot be read or does not hold a usable certificate and key is refused clearly', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  const root = makeRoot('files.test');
  const leaf = makeLeaf(root, 'spiffe://files.test/a');
  const other = makeLeaf(root, 'spiffe://files.test/b');
  const expired = makeLeaf(root, 'spiffe://files.test/c', { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) });
  const write = (name: string, content: string) => {
    fs.writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  };
  const cert = write('cert.pem', leaf.pem);
  const otherKey = write('other.key', ecKeyPem(other.key.privateKey));
  const expiredCert = write('expired.pem', expired.pem);
  const expiredKey = write('expired.key', ecKeyPem(expired.key.privateKey));
  const encryptedKey = write('enc.key', leaf.key.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string);
  const notPem = write('junk.pem', 'hello\n');
  const c = s.client({ reconnect: false });
  const cases: Array<[string, grpc.status, string | RegExp]> = [
    [`file-root:${dir}/missing.pem`, grpc.status.NOT_FOUND, `cannot read root file ${dir}/missing.pem: no such file`],
    [`file-root:${notPem}`, grpc.status.FAILED_PRECONDITION, `root file ${notPem}: no PEM block found`],
    [`file-cert:${cert}~${dir}/missing.key`, grpc.status.NOT_FOUND, `cannot read key file ${dir}/missing.key: no such file`],
    [`file-cert:${cert}~${otherKey}`, grpc.status.FAILED_PRECONDITION, `key file ${otherKey} does not match the certificate in ${cert}`],
    [`file-cert:${cert}~${encryptedKey}`, grpc.status.FAILED_PRECONDITION, /does not hold a usable private key \(expected an unencrypted PEM key\)/],
    [`file-cert:${expiredCert}~${expiredKey}`, grpc.status.FAILED_PRECONDITION, /certificate file .*expired\.pem expired at/],
  ];
  for (const [name, code, message] of cases) {
    const st = await c.subscribe(name).nextStatus();
    t.is(st.code, code, name);
    if (typeof message === 'string') t.is(st.details, message, name);
    else t.regex(st.details, message, name);
  }
  t.is(s.server.usage().fileWatches, 0, 'a refused file secret left a watch behind');
});

test('file watches are released when the last stream on them goes away', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'ca.pem'), makeRoot('files.test').pem);
  const name = `file-root:${dir}/ca.pem`;
  const c1 = s.client();
  const c2 = s.client();
  const ws = [c1.subscribe(name), c2.subscribe(name)];
  await Promise.all(ws.map((w) => w.nextUpdate()));
  t.is(s.server.usage().fileWatches, 1);
  c1.close();
  await pumpUntil(s.clock, () => s.server.streams() === 1, 'one stream to go');
  t.is(s.server.usage().fileWatches, 1, 'the watch went away while a stream still needs it');
  c2.close();
  await pumpUntil(s.clock, () => s.server.usage().fileWatches === 0, 'the watch to be closed');
  t.like(s.server.usage(), { streams: 0, feeds: 0, subscribers: 0 });
});

test('file-root: on a FIFO, /dev/zero, a directory or a path outside --sds-file-dirs is refused with PERMISSION_DENIED while other streams keep being served', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDir(t);
  const fifo = path.join(dir, 'fifo.pem');
  const mk = spawnSync('mkfifo', [fifo]);
  t.is(mk.status, 0, String(mk.stderr));
  fs.mkdirSync(path.join(dir, 'sub'));
  const big = path.join(dir, 'big.pem');
  fs.writeFileSync(big, Buffer.alloc(MAX_SECRET_FILE_BYTES + 1, 0x41));
  fs.symlinkSync('/etc/hostname', path.join(dir, 'escape.pem'));
  const c = s.client({ reconnect: false });
  const cases: Array<[string, RegExp]> = [
    [`file-root:${fifo}`, /it is a FIFO; only regular files are served/],
    ['file-root:/dev/zero', /not under an allowed directory/],
    [`file-root:${dir}/sub`, /it is a directory/],
    [`file-root:${big}`, /over the 1048576-byte limit/],
    ['file-root:/etc/passwd', /not under an allowed directory/],
    [`file-root:${dir}/escape.pem`, /resolves to \/etc\/hostname, outside the allowed directories/],
  ];
  for (const [name, message] of cases) {
    const started = Date.now();
    const st = await c.subscribe(name).nextStatus();
    t.is(st.code, grpc.status.PERMISSION_DENIED, name);
    t.regex(st.details, message, name);
    t.true(Date.now() - started < 2000, `${name} answered promptly`);
  }
  // The server is still usable: a regular file under the allowed directory is served.
  fs.writeFileSync(path.join(dir, 'ca.pem'), makeRoot('files.test').pem);
  const ok = await s.client().subscribe(`file-root:${dir}/ca.pem`).nextUpdate();
  t.truthy(ok.secret.validationContext?.trustedCa);
});

test('/dev/zero is refused as a character device even when its directory is allowed, without reading it', async (t) => {
  const s = await startTestServer(t, { config: { sdsFileDirs: ['/dev'] } });
  const st = await s.client({ reconnect: false }).subscribe('file-root:/dev/zero').nextStatus();
  t.is(st.code, grpc.status.PERMISSION_DENIED);
  t.regex(st.details, /it is a character device/);
});

test('with no --sds-file-dirs (the default), file-backed secrets are refused', async (t) => {
  const s = await startTestServer(t, { config: { sdsFileDirs: [] } });
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'ca.pem'), makeRoot('files.test').pem);
  const st = await s.client({ reconnect: false }).subscribe(`file-root:${dir}/ca.pem`).nextStatus();
  t.is(st.code, grpc.status.PERMISSION_DENIED);
  t.regex(st.details, /file-backed secrets are disabled \(no --sds-file-dirs\)/);
});

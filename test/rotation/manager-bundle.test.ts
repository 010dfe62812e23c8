import test from 'ava';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { MeshidError } from '../../src/lib/errors.js';
import { SvidManager } from '../../src/rotation/manager.js';
import { silentLogger } from '../../src/observability/logger.js';
import { opensslVerify } from '../helpers/openssl.js';
import { chainPem, makeLeaf, makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { advanceUntil, harness, HOUR, ID, started, TOKEN } from './harness.js';
import { InProcessSigner } from './in-process-signer.js';
import { FakeClock } from '../helpers/fake-clock.js';

function rootNames(pem: string | undefined): string[] {
  return pem ? parseCertificatesPem(pem, 'bundle').map((c) => c.subjectText.replace(/^O=example\.org,CN=test /, '')).sort() : [];
}

test('root rotation without a configured bundle: new root added on re-issuance, old root retired when our last SVID under it expires', async (t) => {
  const h = harness(t);
  const underA = await started(h);
  const A = h.signer.root;
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 1']);
  const v1 = h.manager.currentBundle()!.version;

  const B = h.signer.rotateRoot();
  await advanceUntil(h.clock, () => h.manager.currentSvid() !== underA, HOUR);
  const underB = h.manager.currentSvid()!;
  t.is(h.signer.requests[1]!.auth, 'mtls', 'renewed over mTLS with the SVID issued under the old root');
  const both = h.manager.currentBundle()!;
  t.deepEqual(rootNames(both.rootsPem), ['root 1', 'root 2'], 'peers still under the old root keep working');
  t.not(both.version, v1);
  const dir = tempDir(t);
  const at = new Date(h.clock.now());
  t.true(opensslVerify(dir, { roots: B.pem, leaf: underB.certChainPem, atTime: at }).ok, 'the new leaf chains to the new root');
  t.false(opensslVerify(dir, { roots: A.pem, leaf: underB.certChainPem, atTime: at }).ok);
  t.true(opensslVerify(dir, { roots: both.rootsPem, leaf: underA.certChainPem, atTime: at }).ok, 'and old leaves still verify');

  await h.clock.advance(underA.expiresAt - 1 - h.clock.now());
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 1', 'root 2']);
  const told = h.notifications.length;
  await h.clock.advance(1);
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 2'], 'retired exactly when the last SVID under it expired');
  t.is(h.notifications.length, told + 1, 'subscribers are told of the retirement');
  t.truthy(h.logs.find((l) => l.msg?.startsWith('trust bundle changed: a root from an earlier chain retired')));
});

test('root rotation with a configured bundle: roots added and removed through the file reach subscribers', async (t) => {
  const clock = new FakeClock();
  const signer = new InProcessSigner(clock, { tokens: { [TOKEN]: ID } });
  const A = signer.root;
  const h = harness(t, { clock, signerInstance: signer, manager: { configuredRootsPem: A.pem } });
  const configured = h.manager.currentBundle();
  t.deepEqual(rootNames(configured?.rootsPem), ['root 1'], 'a configured bundle is served before the first SVID');
  const first = await started(h);
  t.is(h.manager.currentBundle()!.version, configured!.version, 'the CA root was already configured');
  t.is(h.notifications.length, 1);

  // The operator distributes the next root before the CA switches to it.
  const B = signer.rotateRoot();
  const n1 = h.notifications.length;
  h.manager.setConfiguredRoots(chainPem(A, B));
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 1', 'root 2']);
  t.is(h.notifications.length, n1 + 1);
  const v2 = h.manager.currentBundle()!.version;

  await advanceUntil(h.clock, () => h.manager.currentSvid() !== first, HOUR);
  t.is(h.manager.currentBundle()!.version, v2, 'issuance under B, already configured, changes no root');

  // The old root leaves the file: it leaves the bundle, even though our first SVID under it is still valid.
  const n2 = h.notifications.length;
  h.manager.setConfiguredRoots(B.pem);
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 2']);
  t.is(h.notifications.length, n2 + 1);
  // Setting the same content again is not a change.
  h.manager.setConfiguredRoots(B.pem);
  t.is(h.notifications.length, n2 + 1);
});

test('a configured bundle without the CA\'s root: every answer is refused (ca_root_not_configured) until the file lists that root', async (t) => {
  const clock = new FakeClock();
  const signer = new InProcessSigner(clock, { tokens: { [TOKEN]: ID } });
  const other = makeRoot('example.org', { commonName: 'test other' });
  const h = harness(t, { clock, signerInstance: signer, manager: { configuredRootsPem: other.pem } });
  h.manager.start();
  await advanceUntil(h.clock, () => signer.requests.length >= 2, 5 * 60_000);
  t.false(h.manager.ready());
  t.is(h.manager.currentSvid(), undefined);
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['other'], 'the CA\'s root never enters the bundle');
  const refusal = h.logs.find((l) => (l as { code?: string }).code === 'ca_root_not_configured');
  t.truthy(refusal, 'the refusal is logged with its code');
  t.regex(JSON.stringify(refusal), /ends at root \\"O=example\.org,CN=test root 1\\", which is not in the configured trust bundle \(1 root\(s\)\)/);

  h.manager.setConfiguredRoots(chainPem(other, signer.root));
  t.true(await advanceUntil(h.clock, () => h.manager.ready(), 10 * 60_000));
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['other', 'root 1']);
});

test('the CA switching to a root the configured bundle does not list: renewals refused, the old SVID served until the file lists it', async (t) => {
  const clock = new FakeClock();
  const signer = new InProcessSigner(clock, { tokens: { [TOKEN]: ID } });
  const h = harness(t, { clock, signerInstance: signer, manager: { configuredRootsPem: signer.root.pem } });
  const A = signer.root;
  const first = await started(h);
  const version = h.manager.currentBundle()!.version;
  const B = signer.rotateRoot();
  const before = signer.requests.length;
  await advanceUntil(h.clock, () => signer.requests.length >= before + 2, HOUR);
  t.is(h.manager.currentSvid(), first, 'the SVID under the configured root stays');
  t.is(h.manager.currentBundle()!.version, version, 'the unlisted root is not trusted');
  t.truthy(h.logs.find((l) => (l as { code?: string }).code === 'ca_root_not_configured'));

  h.manager.setConfiguredRoots(chainPem(A, B));
  t.true(await advanceUntil(h.clock, () => h.manager.currentSvid() !== first, HOUR));
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 1', 'root 2']);
});

test('bad configured bundles are refused with a clear error and change nothing', async (t) => {
  const h = harness(t);
  await started(h);
  const before = h.manager.currentBundle();
  const notifications = h.notifications.length;
  const garbage = t.throws(() => h.manager.setConfiguredRoots('not a bundle'), { instanceOf: MeshidError });
  t.regex(garbage?.message ?? '', /configured trust bundle: no PEM block/);
  const leaf = makeLeaf(h.signer.root, ID);
  const notCa = t.throws(() => h.manager.setConfiguredRoots(chainPem(h.signer.root, leaf)), { instanceOf: MeshidError });
  t.is(notCa?.code, 'bundle_root_not_ca');
  const foreign = makeRoot('other.org');
  const wrongDomain = t.throws(() => h.manager.setConfiguredRoots(foreign.pem), { instanceOf: MeshidError });
  t.is(wrongDomain?.code, 'bundle_root_trust_domain_mismatch');
  t.is(h.manager.currentBundle(), before);
  t.is(h.notifications.length, notifications);

  t.throws(
    () => new SvidManager({ spiffeId: ID, signer: h.signer, token: async () => 'x', clock: h.clock, logger: silentLogger(), configuredRootsPem: 'junk' }),
    { instanceOf: MeshidError },
  );
  t.throws(
    () => new SvidManager({ spiffeId: 'spiffe://Bad/ID', signer: h.signer, token: async () => 'x', clock: h.clock, logger: silentLogger() }),
    { instanceOf: MeshidError, message: /trust domain/ },
  );
});

test('unsetting the configured bundle falls back to the CA roots', async (t) => {
  const clock = new FakeClock();
  const signer = new InProcessSigner(clock, { tokens: { [TOKEN]: ID } });
  const other = makeRoot('example.org', { commonName: 'test other' });
  const h = harness(t, { clock, signerInstance: signer, manager: { configuredRootsPem: chainPem(other, signer.root) } });
  await started(h);
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['other', 'root 1']);
  h.manager.setConfiguredRoots(undefined);
  t.deepEqual(rootNames(h.manager.currentBundle()?.rootsPem), ['root 1']);
});

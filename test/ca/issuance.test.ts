/** Issuance over real gRPC/TLS: what the CA signs, for whom, and for how long. */
import { verifyX509Svid } from '../../src/identity/svid-verify.js';
import test from 'ava';
import { status } from '@grpc/grpc-js';
import { CLOCK_SKEW_MS } from '../../src/ca/authority.js';
import { parseCsr } from '../../src/identity/csr.js';
import { findExtension } from '../../src/identity/extensions.js';
import { keyIdentifier } from '../../src/identity/keys.js';
import { OID } from '../../src/identity/oids.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { csrFor, FRONTEND, leafOf, STATIC_TOKEN, startHarness } from './harness.js';

const token = { kind: 'token' as const, token: STATIC_TOKEN };
const HOUR = 3_600_000;

test('a static token gets an X.509-SVID chain that openssl -x509_strict accepts and our parser reads', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, {}, { clock });
  const csr = csrFor(FRONTEND);
  const r = await h.client.createCertificate(csr.pem, token);
  if (!r.ok) return t.fail(r.message);
  t.is(r.chainPem.length, 2, 'leaf and root');
  t.is(r.chainPem[1], h.ca.bundlePem, 'the root last, as in bundle.pem');
  for (const purpose of ['sslclient', 'sslserver']) {
    const v = opensslVerify(tempDir(t), { roots: h.ca.bundlePem, leaf: r.chainPem[0]!, purpose });
    t.true(v.ok, v.output);
  }
  const verified = verifyX509Svid([leafOf(r.chainPem)], [leafOf([h.ca.bundlePem])], { trustDomain: 'example.org', now: clock.now() });
  t.is(verified.spiffeId.uri, FRONTEND);
  const leaf = leafOf(r.chainPem);
  t.deepEqual(leaf.sans, [{ type: 'uri', value: FRONTEND }]);
  t.true(leaf.sanCritical);
  t.true(leaf.subjectEmpty);
  t.deepEqual(leaf.basicConstraints, { ca: false });
  t.true(findExtension(leaf.extensions, OID.basicConstraints)!.critical);
  t.true(findExtension(leaf.extensions, OID.keyUsage)!.critical);
  t.deepEqual([...leaf.keyUsage!], ['digitalSignature']);
  t.deepEqual(leaf.extKeyUsage, [OID.serverAuth, OID.clientAuth]);
  t.deepEqual(leaf.subjectKeyId, keyIdentifier(parseCsr(csr.pem).spki));
  const root = leafOf([h.ca.bundlePem]);
  t.deepEqual(leaf.authorityKeyId, root.subjectKeyId);
  t.true(leaf.verifySignedBy(root.publicKey()));
  t.true(leaf.serial.length >= 16, `serial of ${leaf.serial.length / 2} bytes`);
  const now = Math.floor(clock.now() / 1000) * 1000;
  t.true(Math.abs(leaf.notBefore.getTime() - (now - CLOCK_SKEW_MS)) <= 1000, 'NotBefore back-dated by the skew allowance');
  t.true(Math.abs(leaf.notAfter.getTime() - (now + HOUR)) <= 1000, 'default TTL 1h');

  const issued = h.logs.find((l) => l.event === 'certificate_issued');
  t.like(issued, { identity: FRONTEND, auth: 'static-token', serial: leaf.serial, notAfter: leaf.notAfter.toISOString() });
  t.false(JSON.stringify(h.logs).includes(STATIC_TOKEN), 'the token never reaches the logs');
});

test('two requests get distinct random serials', async (t) => {
  const h = await startHarness(t);
  const a = await h.client.createCertificate(csrFor(FRONTEND).pem, token);
  const b = await h.client.createCertificate(csrFor(FRONTEND).pem, token);
  if (!a.ok || !b.ok) return t.fail('issuance failed');
  t.not(leafOf(a.chainPem).serial, leafOf(b.chainPem).serial);
});

test('a CSR without SANs is signed for the authenticated identity', async (t) => {
  const h = await startHarness(t);
  const { craftCsr } = await import('./harness.js');
  const r = await h.client.createCertificate(craftCsr({}).pem, token);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(leafOf(r.chainPem).sans, [{ type: 'uri', value: FRONTEND }]);
});

test('RSA keys get keyEncipherment too; EC P-384 keys are accepted', async (t) => {
  const h = await startHarness(t);
  const rsa = await h.client.createCertificate(csrFor(FRONTEND, 'rsa-2048').pem, token);
  if (!rsa.ok) return t.fail(rsa.message);
  t.deepEqual([...leafOf(rsa.chainPem).keyUsage!].sort(), ['digitalSignature', 'keyEncipherment']);
  const v = opensslVerify(tempDir(t), { roots: h.ca.bundlePem, leaf: rsa.chainPem[0]! });
  t.true(v.ok, v.output);
  const p384 = await h.client.createCertificate(csrFor(FRONTEND, 'ec-p384').pem, token);
  t.true(p384.ok, p384.ok ? '' : p384.message);
});

test('TTL: the default applies, a shorter request is honoured, a longer one is clamped to --max-ttl and logged', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { ttl: 2 * HOUR, maxTtl: 6 * HOUR }, { clock });
  const now = Math.floor(clock.now() / 1000) * 1000;
  const lifetime = async (seconds?: number) => {
    const r = await h.client.createCertificate(csrFor(FRONTEND).pem, token, seconds);
    if (!r.ok) throw new Error(r.message);
    return leafOf(r.chainPem).notAfter.getTime() - now;
  };
  t.is(await lifetime(), 2 * HOUR);
  t.is(await lifetime(0), 2 * HOUR, '0 means the default');
  t.is(await lifetime(1800), HOUR / 2);
  t.is(await lifetime(48 * 3600), 6 * HOUR, 'clamped to max-ttl');
  const clamped = h.logs.find((l) => l.event === 'certificate_issued' && l.clampedToSeconds !== undefined);
  t.like(clamped, { requestedTtlSeconds: 48 * 3600, clampedToSeconds: 6 * 3600, identity: FRONTEND });
  const negative = await h.client.createCertificate(csrFor(FRONTEND).pem, token, -5);
  t.like(negative, { ok: false, grpcCode: status.INVALID_ARGUMENT, kind: 'invalid_argument' });
  if (!negative.ok) t.regex(negative.message, /validity_duration must be a positive number of seconds/);
});

test('validity_duration: one rule for every size: 10^9 s and int64 max (2^63-1) are both clamped to --max-ttl, not refused', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { ttl: 2 * HOUR, maxTtl: 6 * HOUR }, { clock });
  const now = Math.floor(clock.now() / 1000) * 1000;
  for (const seconds of [1e9, '9223372036854775807']) {
    const r = await h.client.createCertificate(csrFor(FRONTEND).pem, token, seconds);
    t.true(r.ok, `${seconds}: ${r.ok ? '' : r.message}`);
    if (r.ok) t.is(leafOf(r.chainPem).notAfter.getTime() - now, 6 * HOUR, `${seconds} clamped`);
  }
});

/**
 * The running CA's side of revocation: meshid.ca.v1.RevocationService/FetchCRL (authenticated as
 * the CA's other methods, a long poll answered the moment `meshid ca revoke` writes a new CRL), a
 * revoked SVID that no longer authenticates, a CRL re-signed half-way to its nextUpdate, and a
 * crl.pem that is not the CA's own replaced.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { crlProblem, parseCrl } from '../../src/ca/crl.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { csrFor, FRONTEND, leafOf, mtlsAuth, STATIC_TOKEN, startHarness, TD } from './harness.js';
import { runCli } from '../authz/helpers/cli.js';

/** The command line in this process, as the operator who runs it (USER goes into the CA's audit lines). */
const meshid = (args: readonly string[]) => runCli(args, { USER: 'operator-1' });

const token = { kind: 'token', token: STATIC_TOKEN } as const;

test('FetchCRL: the CRL at once, then a long poll answered as soon as meshid ca revoke writes one; a revoked SVID no longer authenticates', async (t) => {
  const h = await startHarness(t);
  const roots = parseCertificatesPem(h.ca.bundlePem, 'bundle');

  const first = await h.client.fetchCrl(0, 0, token);
  if (!first.ok) return t.fail(first.message);
  t.is(first.response.crlNumber, 1, 'the CA signed its first CRL at start');
  const crl1 = parseCrl(first.response.crlDer!);
  t.is(crlProblem(crl1, roots, Date.now()), undefined);
  t.is(crl1.revoked.size, 0);

  const csr = csrFor(FRONTEND);
  const issued = await h.client.createCertificate(csr.pem, token);
  if (!issued.ok) return t.fail(issued.message);
  const serial = leafOf(issued.chainPem).serial;
  const mtls = mtlsAuth(issued.chainPem, csr.key);

  // Unchanged: held for the wait, then an answer without a CRL.
  const started = Date.now();
  const unchanged = await h.client.fetchCrl(1, 300, mtls);
  t.true(unchanged.ok);
  t.true(Date.now() - started >= 280, 'the answer was held');
  t.like(unchanged.ok ? unchanged.response : {}, { crlNumber: 1, crlDer: undefined });

  // A long poll over mTLS, then the offline command revokes the SVID in the CA's state dir.
  const polled = h.client.fetchCrl(1, 20_000, mtls);
  const revokedAt = Date.now();
  const r = await meshid(['ca', 'revoke', '--serial', serial, '--reason', 'keyCompromise', '--state-dir', h.stateDir, '--trust-domain', TD]);
  t.is(r.code, 0, r.stderr);
  const answer = await polled;
  if (!answer.ok) return t.fail(answer.message);
  const latency = Date.now() - revokedAt;
  t.true(answer.response.crlNumber >= 2);
  t.true(parseCrl(answer.response.crlDer!).revoked.has(serial), 'the new CRL lists the serial');
  t.true(latency < 3000, `answered ${latency} ms after the revocation`);
  t.true(h.ca.crls.isRevoked(serial));

  // The revoked SVID authenticates nothing any more; the token still does.
  const refused = await h.client.fetchCrl(0, 0, mtls);
  t.like(refused, { ok: false, kind: 'unauthenticated' });
  t.regex(refused.ok ? '' : refused.message, /is revoked/);
  const renewal = await h.client.createCertificate(csrFor(FRONTEND).pem, mtls);
  t.like(renewal, { ok: false, kind: 'unauthenticated' });
  t.true((await h.client.createCertificate(csrFor(FRONTEND).pem, token)).ok);

  // No credentials at all: refused like the other methods.
  const { CaClient } = await import('../../src/ca/client.js');
  const anonymous = new CaClient({ address: h.ca.address, caBundlePem: h.ca.bundlePem });
  t.teardown(() => anonymous.close());
  t.like(await anonymous.fetchCrl(0, 0, { kind: 'token', token: 'not-a-token' }), { ok: false, kind: 'unauthenticated' });
});

test('the running CA re-signs its CRL half-way to nextUpdate, and replaces a crl.pem that is not its own', async (t) => {
  const clock = new FakeClock(Date.now());
  const h = await startHarness(t, { crlValidity: 60_000 }, { clock });
  const crl1 = h.ca.crls.current()!;
  t.is(crl1.crlNumber, 1);
  t.is(crl1.nextUpdate.getTime() - crl1.thisUpdate.getTime(), 60_000);

  // A caller waiting for anything newer than CRL 1 is answered by the re-signed CRL.
  const polled = h.client.fetchCrl(1, 50_000, token);
  await clock.waitForTimers();
  await clock.advance(30_000);
  await h.ca.crls.refresh();
  const answer = await polled;
  if (!answer.ok) return t.fail(answer.message);
  t.is(answer.response.crlNumber, 2);
  const crl2 = parseCrl(answer.response.crlDer!);
  t.is(crl2.thisUpdate.getTime(), Math.floor(clock.now() / 1000) * 1000);
  const audit = fs.readFileSync(path.join(h.stateDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(audit.at(-1), { event: 'crl', crlNumber: 2, why: 'refresh before nextUpdate' });

  // Garbage in crl.pem: the CA signs a proper one over it and keeps serving meanwhile.
  fs.writeFileSync(path.join(h.stateDir, 'crl.pem'), '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
  await h.ca.crls.refresh();
  t.is(h.ca.crls.current()!.crlNumber, 3);
  t.is(crlProblem(parseCrl(h.ca.crls.current()!.der), parseCertificatesPem(h.ca.bundlePem, 'bundle'), clock.now()), undefined);
  t.regex(fs.readFileSync(path.join(h.stateDir, 'crl.pem'), 'utf8'), /BEGIN X509 CRL/);
});

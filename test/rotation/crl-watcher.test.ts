/**
 * The agent's CRL watcher: a CRL is used only once it verifies (signature against the bundle or the
 * chain above the SVID, sane thisUpdate/nextUpdate, a cRLNumber not going back); a bad one keeps the
 * last good; one whose issuer is not known yet is applied when it is; an expired CRL leaves the
 * handshake path but its revocations still count; the long poll follows the CA. Fake clock.
 */
import test from 'ava';
import { buildCrl, crlPem, type CrlEntry } from '../../src/ca/crl.js';
import type { Certificate } from '../../src/identity/certificate.js';
import { type CrlFetcher, CrlWatcher, type HeldCrl } from '../../src/rotation/crl-watcher.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogs } from '../helpers/logs.js';
import { type Issued, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';

const HOUR = 3_600_000;

function crlOf(issuer: Issued, o: { number: number; now: number; entries?: CrlEntry[]; thisUpdate?: number; nextUpdate?: number; signWith?: Issued }): Buffer {
  return buildCrl({
    issuer: issuer.cert,
    issuerKey: (o.signWith ?? issuer).key.privateKey,
    thisUpdate: new Date(o.thisUpdate ?? o.now),
    nextUpdate: new Date(o.nextUpdate ?? o.now + HOUR),
    crlNumber: o.number,
    entries: o.entries ?? [],
  });
}

function watcher(issuers: () => readonly Certificate[], o: { fetcher?: CrlFetcher } = {}) {
  const clock = new FakeClock(Date.parse('2026-06-01T00:00:00Z'));
  const { logger, lines } = captureLogs();
  const changes: Array<HeldCrl | undefined> = [];
  const w = new CrlWatcher({
    clock,
    logger,
    issuers,
    onChange: (c) => changes.push(c),
    ...(o.fetcher ? { fetcher: o.fetcher, auth: async () => ({ kind: 'token', token: 't' }) as const, waitMs: 30_000, random: () => 0.5 } : {}),
  });
  return { w, clock, lines, changes };
}

const root = makeRoot('example.org');
const leaf = makeLeaf(root, 'spiffe://example.org/partner/acme');

test('a CRL that verifies is used; every bad one keeps the last good CRL', (t) => {
  const { w, clock, lines, changes } = watcher(() => [root.cert]);
  const now = clock.now();
  t.true(w.offer(crlOf(root, { number: 3, now }), 'ca'));
  t.is(w.current()?.crlNumber, 3);
  t.false(w.isRevokedSerial(leaf.cert.serial));

  const revoking = { number: 4, now, entries: [{ serial: leaf.cert.serial, revokedAt: new Date(now), reason: 'keyCompromise' as const }] };
  const other = makeRoot('example.org', { commonName: 'another root' });
  const bad: Array<[string, Buffer | string]> = [
    ['garbage', Buffer.from('not a CRL')],
    ['signed by a key not in the bundle', crlOf(root, { ...revoking, signWith: other })],
    ['from an issuer not in the bundle', crlOf(other, revoking)],
    ['already past its nextUpdate', crlOf(root, { ...revoking, thisUpdate: now - 2 * HOUR, nextUpdate: now - 1 })],
    ['thisUpdate an hour ahead', crlOf(root, { ...revoking, thisUpdate: now + HOUR, nextUpdate: now + 2 * HOUR })],
    ['nextUpdate before thisUpdate', crlOf(root, { ...revoking, thisUpdate: now, nextUpdate: now - 1000 })],
    ['an older CRL number', crlOf(root, { ...revoking, number: 2 })],
  ];
  for (const [what, crl] of bad) {
    t.false(w.offer(crl, what), what);
    t.is(w.current()?.crlNumber, 3, what);
    t.false(w.isRevokedSerial(leaf.cert.serial), what);
  }
  t.is(lines.filter((l) => l.event === 'crl_refused').length, bad.length);
  t.is(changes.length, 1, 'no change announced for a refused CRL');

  // PEM works as well as DER; the revocation is then in force.
  t.true(w.offer(crlPem(crlOf(root, revoking)), 'file.pem', ['spiffe://example.org/partner/acme']));
  t.true(w.isRevokedSerial(leaf.cert.serial));
  t.true(w.isRevokedSerial(`00${leaf.cert.serial}`), 'a leading zero byte does not matter');
  t.true(w.isRevokedId('spiffe://example.org/partner/acme'));
  t.false(w.isRevokedId('spiffe://example.org/partner/other'));
  t.regex(changes.at(-1)!.pem, /^-----BEGIN X509 CRL-----/);
});

test('a CRL signed by the intermediate above the SVID verifies; one that came before its issuer was known applies on recheck', (t) => {
  const intermediate = makeIntermediate(root);
  let issuers: Certificate[] = [];
  const { w, clock } = watcher(() => issuers);
  t.false(w.offer(crlOf(intermediate, { number: 1, now: clock.now() }), 'ca'));
  t.is(w.current(), undefined);
  issuers = [root.cert, intermediate.cert];
  w.recheck();
  t.is(w.current()?.crlNumber, 1);
});

test('past its nextUpdate a CRL leaves the handshake path (TLS would refuse every peer) but its revocations still deny', async (t) => {
  const { w, clock, changes } = watcher(() => [root.cert]);
  const now = clock.now();
  w.offer(crlOf(root, { number: 1, now, nextUpdate: now + 60_000, entries: [{ serial: leaf.cert.serial, revokedAt: new Date(now), reason: 'unspecified' }] }), 'ca');
  t.is(w.forHandshakes()?.crlNumber, 1);
  await clock.advance(60_000);
  t.is(w.forHandshakes(), undefined);
  t.is(changes.at(-1), undefined, 'subscribers were told the CRL left the handshake path');
  t.true(w.isRevokedSerial(leaf.cert.serial));
});

test('the long poll: asks with the CRL number held, re-polls at once after an answer, backs off after failures, waits 5 min on UNIMPLEMENTED', async (t) => {
  const asked: Array<[number, number]> = [];
  const answers: Array<() => ReturnType<CrlFetcher['fetchCrl']>> = [];
  let now = 0;
  const fetcher: CrlFetcher = {
    fetchCrl: (known, waitMs) => {
      asked.push([known, waitMs]);
      const next = answers.shift();
      return next ? next() : new Promise(() => {});
    },
  };
  const { w, clock } = watcher(() => [root.cert], { fetcher });
  now = clock.now();
  answers.push(
    async () => ({ ok: true, response: { crlNumber: 1, crlDer: crlOf(root, { number: 1, now }), revokedIds: [] } }),
    async () => ({ ok: true, response: { crlNumber: 1, revokedIds: [] } }),
    async () => ({ ok: false, kind: 'unavailable', grpcCode: 14, message: 'down' }),
    async () => ({ ok: false, kind: 'unimplemented', grpcCode: 12, message: 'no such service' }),
  );
  w.start();
  t.teardown(() => w.stop());
  const until = async (n: number) => {
    for (let i = 0; i < 100 && asked.length < n; i++) await new Promise((r) => setImmediate(r));
  };
  await until(3);
  t.deepEqual(asked, [[0, 30_000], [1, 30_000], [1, 30_000]], 'an answer is followed by the next poll at once, with the number held');
  t.is(w.current()?.crlNumber, 1);
  await clock.advanceToNext(); // the backoff after "down"
  await until(4);
  t.is(asked.length, 4);
  await clock.advance(4 * 60_000);
  await until(5);
  t.is(asked.length, 4, 'no poll within 5 min of UNIMPLEMENTED');
  await clock.advance(60_000);
  await until(5);
  t.is(asked.length, 5);
});

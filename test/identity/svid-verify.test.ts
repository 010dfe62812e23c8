/** Path building, the verified result, and the API's edges (the per-rule table is in svid-verify-rules). */
import test from 'ava';
import { MeshidError } from '../../src/lib/errors.js';
import { SpiffeIdError } from '../../src/identity/spiffe-id.js';
import { MAX_PATH_CERTIFICATES, type SvidFailureReason, SvidVerificationError, verifyX509Svid } from '../../src/identity/svid-verify.js';
import { type Issued, makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';

const HOUR = 3_600_000;
const AT = Math.floor(Date.now() / 1000) * 1000;
const ID = 'spiffe://example.org/ns/shop/sa/frontend';
const certs = (...xs: Issued[]) => xs.map((x) => x.cert);

function rejects(t: import('ava').ExecutionContext, chain: Issued[], roots: Issued[], reason: SvidFailureReason, options: { now?: number; trustDomain?: string } = { now: AT }): SvidVerificationError {
  const e = t.throws(() => verifyX509Svid(certs(...chain), certs(...roots), options), { instanceOf: SvidVerificationError })!;
  t.is(e.reason, reason, e.message);
  return e;
}

test('the result: SPIFFE ID, leaf, path leaf..root, and the earliest notAfter on the path', (t) => {
  const root = makeRoot('example.org', { notBefore: new Date(AT - HOUR), notAfter: new Date(AT + 100 * HOUR) });
  const inter = makeIntermediate(root, 'example.org', { notBefore: new Date(AT - HOUR), notAfter: new Date(AT + 5 * HOUR) });
  const leaf = makeLeaf(inter, ID, { notBefore: new Date(AT - HOUR), notAfter: new Date(AT + 10 * HOUR) });
  const v = verifyX509Svid(certs(leaf, inter), certs(root), { now: AT, trustDomain: 'example.org' });
  t.is(v.spiffeId.uri, ID);
  t.is(v.spiffeId.trustDomain, 'example.org');
  t.is(v.leaf, leaf.cert);
  t.deepEqual(v.path, certs(leaf, inter, root));
  t.is(v.expiresAt.getTime(), AT + 5 * HOUR, 'the intermediate expires first');
});

test('the trust domain may be given as spiffe://td, and may be left out', (t) => {
  const root = makeRoot();
  const leaf = makeLeaf(root, ID);
  t.is(verifyX509Svid(certs(leaf), certs(root), { trustDomain: 'spiffe://example.org' }).spiffeId.uri, ID);
  t.is(verifyX509Svid(certs(leaf), certs(root)).spiffeId.uri, ID, 'now defaults to the current time');
});

test('validity bounds are inclusive, to the millisecond', (t) => {
  const notBefore = new Date(AT - HOUR);
  const notAfter = new Date(AT + HOUR);
  const root = makeRoot('example.org', { notBefore: new Date(AT - 2 * HOUR), notAfter: new Date(AT + 2 * HOUR) });
  const leaf = makeLeaf(root, ID, { notBefore, notAfter });
  for (const now of [notBefore.getTime(), notAfter.getTime()]) t.notThrows(() => verifyX509Svid(certs(leaf), certs(root), { now }));
  rejects(t, [leaf], [root], 'not_yet_valid', { now: notBefore.getTime() - 1 });
  const e = rejects(t, [leaf], [root], 'expired', { now: notAfter.getTime() + 1 });
  t.is(e.certificate, leaf.cert, 'the error names the certificate that failed');
  t.regex(e.message, new RegExp(`expired at ${notAfter.toISOString().replace('.000Z', 'Z')}`));
});

test('errors are MeshidErrors of kind unauthenticated with a stable code', (t) => {
  const root = makeRoot();
  const e = rejects(t, [makeLeaf(root, ID, { keyUsage: null })], [root], 'leaf_key_usage_missing');
  t.true(e instanceof MeshidError);
  t.is(e.kind, 'unauthenticated');
  t.is(e.code, 'svid_leaf_key_usage_missing');
});

test('an empty chain, an empty bundle and a malformed trust domain option', (t) => {
  const root = makeRoot();
  const leaf = makeLeaf(root, ID);
  t.is(t.throws(() => verifyX509Svid([], certs(root)), { instanceOf: SvidVerificationError })?.reason, 'empty_chain');
  t.is(t.throws(() => verifyX509Svid(certs(leaf), []), { instanceOf: SvidVerificationError })?.reason, 'no_roots');
  t.throws(() => verifyX509Svid(certs(leaf), certs(root), { trustDomain: 'Example.ORG' }), { instanceOf: SpiffeIdError });
  const e = t.throws(() => verifyX509Svid(certs(leaf), certs(root), { now: NaN }), { instanceOf: MeshidError });
  t.is(e?.code, 'verify_time_invalid', 'a NaN time must not pass every date check');
});

test('a self-signed leaf, even one that is in the bundle, is not an SVID', (t) => {
  const root = makeRoot();
  const e = rejects(t, [root], [root], 'untrusted');
  t.regex(e.message, /is self-issued; an SVID must be issued by a CA of the trust bundle/);
});

test('a CA of another trust domain is refused even when no trust domain is required', (t) => {
  const root = makeRoot('other.org');
  rejects(t, [makeLeaf(root, ID)], [root], 'ca_trust_domain_mismatch', {});
});

test('roots without a SPIFFE ID are judged by bundle membership alone', (t) => {
  const root = makeRoot('example.org', { sans: [] });
  const v = verifyX509Svid(certs(makeLeaf(root, ID)), certs(root), { now: AT, trustDomain: 'example.org' });
  t.is(v.spiffeId.uri, ID);
});

test('the real issuer is preferred over a same-named impostor, wherever the chain lists it', (t) => {
  const root = makeRoot();
  const inter = makeIntermediate(root);
  const impostor = makeIntermediate(makeRoot('example.org', { commonName: 'elsewhere' }));
  const leaf = makeLeaf(inter, ID);
  for (const chain of [[leaf, impostor, inter], [leaf, inter, impostor]]) {
    t.deepEqual(verifyX509Svid(certs(...chain), certs(root), { now: AT }).path, certs(leaf, inter, root));
  }
  // Without key identifiers the impostor is tried first: its signature fails, then the real one works.
  const bare = makeLeaf(inter, ID, { omitAuthorityKeyId: true });
  t.deepEqual(verifyX509Svid(certs(bare, impostor, inter), certs(root), { now: AT }).path, certs(bare, inter, root));
});

test('when every path fails, the error is the real issuer\'s problem, not an impostor\'s bad signature', (t) => {
  const root = makeRoot();
  const expired = makeIntermediate(root, 'example.org', { notBefore: new Date(AT - 48 * HOUR), notAfter: new Date(AT - HOUR) });
  const impostor = makeIntermediate(makeRoot('example.org', { commonName: 'elsewhere' }));
  const leaf = makeLeaf(expired, ID, { omitAuthorityKeyId: true });
  for (const chain of [[leaf, impostor, expired], [leaf, expired, impostor]]) {
    const e = rejects(t, chain, [root], 'expired');
    t.is(e.certificate, expired.cert);
  }
});

test('an intermediate whose issuer is missing is reported as such', (t) => {
  const root = makeRoot();
  const lostRoot = makeRoot('example.org', { commonName: 'lost root' });
  const inter = makeIntermediate(lostRoot);
  const e = rejects(t, [makeLeaf(inter, ID), inter], [root], 'untrusted');
  t.regex(e.message, /no trusted issuer for intermediate .*its issuer "O=example.org,CN=lost root"/);
});

test('certificates that issue each other in a loop end in untrusted, not a hang', (t) => {
  const seedA = makeRoot('example.org', { commonName: 'A' });
  const seedB = makeRoot('example.org', { commonName: 'B' });
  // A signed by B and B signed by A, with the seeds' keys: a cycle A -> B -> A.
  const a = makeIntermediate(seedB, 'example.org', { commonName: 'A', key: seedA.key, basicConstraints: { ca: true } });
  const b = makeIntermediate(seedA, 'example.org', { commonName: 'B', key: seedB.key, basicConstraints: { ca: true } });
  const leaf = makeLeaf(a, ID);
  const e = rejects(t, [leaf, a, b, a, b], [makeRoot()], 'untrusted');
  t.regex(e.message, /issuer "O=example.org,CN=A"/);
});

test(`paths longer than ${MAX_PATH_CERTIFICATES} certificates are refused`, (t) => {
  const build = (intermediates: number) => {
    const root = makeRoot();
    const chain: Issued[] = [];
    let issuer = root;
    for (let i = 0; i < intermediates; i++) {
      issuer = makeIntermediate(issuer, 'example.org', { commonName: `level ${i}`, basicConstraints: { ca: true } });
      chain.unshift(issuer);
    }
    return { root, chain: [makeLeaf(issuer, ID), ...chain] };
  };
  const fits = build(MAX_PATH_CERTIFICATES - 2);
  t.is(verifyX509Svid(certs(...fits.chain), certs(fits.root), { now: AT }).path.length, MAX_PATH_CERTIFICATES);
  const tooLong = build(MAX_PATH_CERTIFICATES - 1);
  rejects(t, tooLong.chain, [tooLong.root], 'path_too_long');
});

test('a chain stuffed with same-named certificates is bounded work', (t) => {
  const root = makeRoot();
  const inter = makeIntermediate(root);
  const junkRoot = makeRoot('example.org', { commonName: 'junk' });
  const junk = Array.from({ length: 40 }, () => makeIntermediate(junkRoot));
  const leaf = makeLeaf(inter, ID, { omitAuthorityKeyId: true });
  const started = process.hrtime.bigint();
  const e = rejects(t, [leaf, ...junk, inter], [root], 'untrusted');
  t.regex(e.message, /gave up building a path after 32 candidate issuers/);
  t.true(Number(process.hrtime.bigint() - started) / 1e6 < 500, 'gives up quickly');
  // With key identifiers the real issuer is tried first, whatever the chain holds.
  const keyed = makeLeaf(inter, ID);
  t.is(verifyX509Svid(certs(keyed, ...junk, inter), certs(root), { now: AT }).path[1], inter.cert);
});

test('a repeated leaf, a repeated intermediate and the root itself in the chain are harmless', (t) => {
  const root = makeRoot();
  const inter = makeIntermediate(root);
  const leaf = makeLeaf(inter, ID);
  const v = verifyX509Svid(certs(leaf, inter, leaf, inter, root), certs(root), { now: AT });
  t.deepEqual(v.path, certs(leaf, inter, root));
});

test('a certificate in the chain is never a trust anchor, even if self-signed', (t) => {
  const root = makeRoot();
  const leaf = makeLeaf(root, ID);
  rejects(t, [leaf, root], [makeRoot('example.org', { commonName: 'the real root' })], 'untrusted');
});

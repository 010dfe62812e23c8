import test from 'ava';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { type Certificate } from '../../src/identity/certificate.js';
import { trustBundleFromCertificates } from '../../src/identity/bundle.js';
import { TrustBundleState } from '../../src/rotation/trust-bundle.js';
import { makeRoot } from '../helpers/pki.js';

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

function rootsIn(state: TrustBundleState): string[] {
  const view = state.view();
  return view ? parseCertificatesPem(view.rootsPem, 'bundle').map((c) => c.subjectText) : [];
}

const cfg = (...roots: Certificate[]) => trustBundleFromCertificates('example.org', roots);

const A = makeRoot('example.org', { commonName: 'A' });
const B = makeRoot('example.org', { commonName: 'B' });
const C = makeRoot('example.org', { commonName: 'C' });

test('empty until a root arrives; then the view names the trust domain', (t) => {
  const s = new TrustBundleState('example.org');
  t.is(s.view(), undefined);
  t.true(s.learnFromCa(A.cert, T0 + HOUR));
  t.is(s.view()?.trustDomain, 'example.org');
  t.deepEqual(rootsIn(s), ['O=example.org,CN=A']);
});

test('without a configured bundle, a root rotation keeps the old root until the last SVID under it expires', (t) => {
  const s = new TrustBundleState('example.org');
  s.learnFromCa(A.cert, T0 + HOUR);
  const v1 = s.view()!.version;
  t.true(s.learnFromCa(B.cert, T0 + 2 * HOUR), 'the new root is added');
  t.deepEqual(rootsIn(s).sort(), ['O=example.org,CN=A', 'O=example.org,CN=B']);
  t.not(s.view()!.version, v1);
  t.is(s.nextPruneAt(), T0 + HOUR);
  t.false(s.prune(T0 + HOUR - 1));
  t.true(s.prune(T0 + HOUR), 'the old root leaves once our last SVID under it expired');
  t.deepEqual(rootsIn(s), ['O=example.org,CN=B']);
  t.is(s.nextPruneAt(), undefined);
});

test('the same root learned again changes nothing and extends its retention', (t) => {
  const s = new TrustBundleState('example.org');
  s.learnFromCa(A.cert, T0 + HOUR);
  t.false(s.learnFromCa(A.cert, T0 + 2 * HOUR));
  s.learnFromCa(B.cert, T0 + 3 * HOUR);
  t.is(s.nextPruneAt(), T0 + 2 * HOUR);
});

test('with a configured bundle: configured roots plus the current chain root; removing from the file removes', (t) => {
  const s = new TrustBundleState('example.org');
  t.true(s.setConfigured(cfg(A.cert)));
  t.false(s.learnFromCa(A.cert, T0 + HOUR), 'the CA root was already configured');
  t.true(s.setConfigured(cfg(A.cert, B.cert)), 'a new root in the file reaches the bundle');
  t.false(s.learnFromCa(B.cert, T0 + 2 * HOUR), 'the CA now issues under B, already present');
  t.true(s.setConfigured(cfg(B.cert)), 'the old root leaves when the file drops it');
  t.deepEqual(rootsIn(s), ['O=example.org,CN=B']);
});

test('with a configured bundle that lacks the CA root, the root our own chain needs stays in', (t) => {
  const s = new TrustBundleState('example.org');
  s.setConfigured(cfg(C.cert));
  s.learnFromCa(A.cert, T0 + HOUR);
  t.deepEqual(rootsIn(s).sort(), ['O=example.org,CN=A', 'O=example.org,CN=C']);
  // Renewed under B: A was only ever a CA root, and the file is authoritative for old roots.
  s.learnFromCa(B.cert, T0 + 2 * HOUR);
  t.deepEqual(rootsIn(s).sort(), ['O=example.org,CN=B', 'O=example.org,CN=C']);
});

test('the version depends on the set of roots, not on the order they arrived in', (t) => {
  const x = new TrustBundleState('example.org');
  x.setConfigured(cfg(A.cert, B.cert));
  const y = new TrustBundleState('example.org');
  y.setConfigured(cfg(B.cert, A.cert, B.cert));
  t.is(x.view()!.version, y.view()!.version);
  t.is(x.view()!.rootsPem, y.view()!.rootsPem);
  t.is(x.roots().length, 2);
});

test('unconfiguring the bundle falls back to CA roots only; no roots at all means no view', (t) => {
  const s = new TrustBundleState('example.org');
  s.setConfigured(cfg(A.cert));
  t.true(s.setConfigured(undefined));
  t.is(s.view(), undefined);
});

test('roots() is the same array until the roots change (consumers cache on it)', (t) => {
  const state = new TrustBundleState('example.org');
  t.is(state.roots(), state.roots(), 'no bundle yet: still one array');
  const a = makeRoot('example.org', { commonName: 'a' });
  state.learnFromCa(a.cert, Date.now() + 3_600_000);
  const first = state.roots();
  t.false(state.learnFromCa(a.cert, Date.now() + 7_200_000), 'the same root again changes nothing');
  t.false(state.prune(Date.now()));
  t.is(state.roots(), first);
  const b = makeRoot('example.org', { commonName: 'b' });
  t.true(state.learnFromCa(b.cert, Date.now() + 3_600_000));
  t.not(state.roots(), first);
});

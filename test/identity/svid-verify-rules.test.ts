/**
 * One row per verification rule: our verifier's verdict (and reason), and `openssl verify
 * -x509_strict` on the same certificates at the same time. Where OpenSSL has no such rule (the
 * SPIFFE ones) it must accept the path, which shows that our rejection comes from that rule alone;
 * the few deliberate disagreements are explained in their rows, and each row is checked to say
 * so exactly when the verdicts differ.
 */
import test from 'ava';
import { der } from '../../src/identity/der.js';
import { extensionNode } from '../../src/identity/extensions.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { OID } from '../../src/identity/oids.js';
import { type SvidFailureReason, SvidVerificationError, verifyX509Svid } from '../../src/identity/svid-verify.js';
import { opensslVerify } from '../helpers/openssl.js';
import { chainPem, type Issued, makeIntermediate, makeLeaf, makeRoot, resign } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';

const HOUR = 3_600_000;
/** The verification time, whole seconds because openssl -attime takes seconds. */
const AT = Math.floor(Date.now() / 1000) * 1000;
const ID = 'spiffe://example.org/ns/shop/sa/frontend';

interface Scenario {
  roots: Issued[];
  /** Leaf first, then intermediates as a peer would send them. */
  chain: Issued[];
  trustDomain?: string;
}

type OpensslExpectation = { ok: true } | { ok: false; error: RegExp };

interface Row {
  title: string;
  make: () => Scenario;
  /** undefined: the SVID must verify. */
  reason?: SvidFailureReason;
  openssl: OpensslExpectation;
  /** openssl -purpose; sslclient by default, since an SVID presented to us is a TLS client's. */
  purpose?: string;
  /** Run openssl without -x509_strict (for inputs strict mode refuses for unrelated reasons). */
  lenientOpenssl?: boolean;
  /** Why our verdict differs from OpenSSL's, when it does. */
  differs?: string;
}

const SPIFFE_ONLY = 'a SPIFFE X509-SVID rule that X.509 path validation does not have';

const accept: OpensslExpectation = { ok: true };
const reject = (error: RegExp): OpensslExpectation => ({ ok: false, error });

const dates = (fromHours: number, toHours: number) => ({ notBefore: new Date(AT + fromHours * HOUR), notAfter: new Date(AT + toHours * HOUR) });
const unknownCritical = () => extensionNode('1.3.6.1.4.1.55555.1', true, der.null());

function direct(leafOptions: Parameters<typeof makeLeaf>[2] = {}, spiffeId = ID): Scenario {
  const root = makeRoot();
  return { roots: [root], chain: [makeLeaf(root, spiffeId, leafOptions)] };
}

function viaIntermediate(interOptions: Parameters<typeof makeIntermediate>[2] = {}, rootOptions: Parameters<typeof makeRoot>[1] = {}): Scenario {
  const root = makeRoot('example.org', rootOptions);
  const inter = makeIntermediate(root, 'example.org', interOptions);
  return { roots: [root], chain: [makeLeaf(inter, ID), inter] };
}

const rows: Row[] = [
  // ---- valid paths ----
  { title: 'good leaf directly under a root', make: () => direct(), openssl: accept },
  { title: 'good leaf under an intermediate', make: () => viaIntermediate(), openssl: accept },
  {
    title: 'two intermediates given in the wrong order',
    make: () => {
      const root = makeRoot();
      const upper = makeIntermediate(root, 'example.org', { commonName: 'upper', basicConstraints: { ca: true, pathLen: 1 } });
      const lower = makeIntermediate(upper, 'example.org', { commonName: 'lower' });
      return { roots: [root], chain: [makeLeaf(lower, ID), upper, lower] };
    },
    openssl: accept,
  },
  {
    title: 'chain with extra unrelated certificates',
    make: () => {
      const root = makeRoot();
      const inter = makeIntermediate(root);
      const strangerRoot = makeRoot('example.org', { commonName: 'stranger' });
      const stranger = makeIntermediate(strangerRoot, 'example.org', { commonName: 'stranger intermediate' });
      return { roots: [root], chain: [makeLeaf(inter, ID), stranger, strangerRoot, inter, root] };
    },
    openssl: accept,
  },
  ...(['old', 'new'] as const).map(
    (which): Row => ({
      title: `two roots in the bundle, leaf under the ${which} one`,
      make: () => {
        const old = makeRoot('example.org', { commonName: 'root 2024' });
        const fresh = makeRoot('example.org', { commonName: 'root 2025' });
        return { roots: [old, fresh], chain: [makeLeaf(which === 'old' ? old : fresh, ID)] };
      },
      openssl: accept,
    }),
  ),
  {
    title: 'two roots with the same name (key rotation), leaf under the second',
    make: () => {
      const old = makeRoot('example.org', { commonName: 'root' });
      const fresh = makeRoot('example.org', { commonName: 'root' });
      return { roots: [old, fresh], chain: [makeLeaf(fresh, ID)] };
    },
    openssl: accept,
  },
  {
    title: 'two roots with the same name and no AKI: the wrong key is tried, then the right one',
    make: () => {
      const old = makeRoot('example.org', { commonName: 'root' });
      const fresh = makeRoot('example.org', { commonName: 'root' });
      return { roots: [old, fresh], chain: [makeLeaf(fresh, ID, { omitAuthorityKeyId: true })] };
    },
    lenientOpenssl: true, // strict mode demands an AKI
    openssl: reject(/certificate signature failure/),
    differs: 'OpenSSL takes the first root whose name matches and does not try the next one when the signature fails',
  },
  {
    title: 'a self-issued rollover certificate does not count against pathLen',
    make: () => {
      const root = makeRoot('example.org', { commonName: 'root', basicConstraints: { ca: true, pathLen: 1 } });
      const rollover = makeIntermediate(root, 'example.org', { commonName: 'root', basicConstraints: { ca: true } });
      const inter = makeIntermediate(rollover);
      return { roots: [root], chain: [makeLeaf(inter, ID), inter, rollover] };
    },
    openssl: accept,
  },
  {
    title: 'RSA-2048 root and P-384 intermediate',
    make: () => {
      const root = makeRoot('example.org', { keyAlgorithm: 'rsa-2048' });
      const inter = makeIntermediate(root, 'example.org', { keyAlgorithm: 'ec-p384' });
      return { roots: [root], chain: [makeLeaf(inter, ID), inter] };
    },
    openssl: accept,
  },

  // ---- validity dates ----
  { title: 'expired leaf', make: () => direct(dates(-48, -1)), reason: 'expired', openssl: reject(/certificate has expired/) },
  { title: 'not-yet-valid leaf', make: () => direct(dates(1, 48)), reason: 'not_yet_valid', openssl: reject(/certificate is not yet valid/) },
  { title: 'expired intermediate', make: () => viaIntermediate(dates(-48, -1)), reason: 'expired', openssl: reject(/certificate has expired/) },
  { title: 'not-yet-valid intermediate', make: () => viaIntermediate(dates(1, 48)), reason: 'not_yet_valid', openssl: reject(/certificate is not yet valid/) },
  { title: 'expired root', make: () => viaIntermediate({}, dates(-48, -1)), reason: 'expired', openssl: reject(/certificate has expired/) },
  { title: 'not-yet-valid root', make: () => viaIntermediate({}, dates(1, 48)), reason: 'not_yet_valid', openssl: reject(/certificate is not yet valid/) },

  // ---- CA rules ----
  { title: 'intermediate with cA=false', make: () => viaIntermediate({ basicConstraints: { ca: false } }), reason: 'issuer_not_ca', openssl: reject(/invalid CA certificate/) },
  { title: 'intermediate without basicConstraints', make: () => viaIntermediate({ basicConstraints: null }), reason: 'issuer_not_ca', openssl: reject(/invalid CA certificate/) },
  {
    title: 'intermediate without keyCertSign',
    make: () => viaIntermediate({ keyUsage: ['digitalSignature', 'cRLSign'] }),
    reason: 'issuer_key_cert_sign_missing',
    openssl: reject(/key usage does not include certificate signing/),
  },
  {
    title: 'intermediate without keyUsage',
    make: () => viaIntermediate({ keyUsage: null }),
    reason: 'issuer_key_usage_missing',
    openssl: reject(/CA cert does not include key usage extension/),
  },
  {
    title: 'root without keyCertSign',
    make: () => viaIntermediate({}, { keyUsage: ['digitalSignature', 'cRLSign'] }),
    reason: 'issuer_key_cert_sign_missing',
    openssl: reject(/key usage does not include certificate signing/),
  },
  {
    title: 'pathLen 0 intermediate issuing another intermediate',
    make: () => {
      const root = makeRoot();
      const upper = makeIntermediate(root, 'example.org', { commonName: 'upper', basicConstraints: { ca: true, pathLen: 0 } });
      const lower = makeIntermediate(upper, 'example.org', { commonName: 'lower' });
      return { roots: [root], chain: [makeLeaf(lower, ID), lower, upper] };
    },
    reason: 'path_length_exceeded',
    openssl: reject(/path length constraint exceeded/),
  },
  {
    title: 'root with pathLen 0 above an intermediate',
    make: () => viaIntermediate({}, { basicConstraints: { ca: true, pathLen: 0 } }),
    reason: 'path_length_exceeded',
    openssl: reject(/path length constraint exceeded/),
  },
  {
    title: 'v1 intermediate',
    make: () => {
      const root = makeRoot();
      const v3 = makeIntermediate(root, 'example.org', { basicConstraints: null, keyUsage: null });
      // Drop the version field and the extensions: a v1 certificate, signed by the root.
      const v1 = resign(v3, root.key.privateKey, (f) => f.filter((n) => n.tagClass !== 0x80));
      return { roots: [root], chain: [makeLeaf(v1, ID), v1] };
    },
    reason: 'issuer_not_v3',
    openssl: reject(/invalid CA certificate/),
  },

  // ---- signatures and structure ----
  {
    title: 'leaf signed by the wrong key',
    make: () => direct({ signWith: generateKeyPairSync().privateKey }),
    reason: 'bad_signature',
    openssl: reject(/certificate signature failure/),
  },
  {
    title: 'intermediate signed by the wrong key',
    make: () => viaIntermediate({ signWith: generateKeyPairSync().privateKey }),
    reason: 'bad_signature',
    openssl: reject(/certificate signature failure/),
  },
  {
    title: 'leaf from a CA that is not in the bundle',
    make: () => {
      const root = makeRoot();
      const other = makeRoot('example.org', { commonName: 'other root' });
      return { roots: [root], chain: [makeLeaf(other, ID)] };
    },
    reason: 'untrusted',
    openssl: reject(/unable to get local issuer certificate/),
  },
  {
    title: 'chain ending in a self-signed root that is not in the bundle',
    make: () => {
      const root = makeRoot();
      const other = makeRoot('example.org', { commonName: 'other root' });
      const inter = makeIntermediate(other);
      return { roots: [root], chain: [makeLeaf(inter, ID), inter, other] };
    },
    reason: 'untrusted',
    openssl: reject(/self-signed certificate in certificate chain/),
  },
  {
    title: 'leaf whose inner signature algorithm differs from the outer one',
    make: () => {
      const root = makeRoot();
      const leaf = makeLeaf(root, ID);
      const forged = resign(leaf, root.key.privateKey, (f) => f.map((n, i) => (i === 2 ? der.seq([der.oid(OID.ecdsaWithSha384)]) : n)));
      return { roots: [root], chain: [forged] };
    },
    reason: 'signature_algorithm_mismatch',
    openssl: reject(/cert info signature and signature algorithm mismatch/),
  },
  {
    title: 'leaf with an unknown critical extension',
    make: () => direct({ extraExtensions: [unknownCritical()] }),
    reason: 'unknown_critical_extension',
    openssl: reject(/unhandled critical extension/),
  },
  {
    title: 'intermediate with an unknown critical extension',
    make: () => viaIntermediate({ extraExtensions: [unknownCritical()] }),
    reason: 'unknown_critical_extension',
    openssl: reject(/unhandled critical extension/),
  },
  {
    title: 'an unknown non-critical extension is ignored',
    make: () => direct({ extraExtensions: [extensionNode('1.3.6.1.4.1.55555.1', false, der.null())] }),
    openssl: accept,
  },

  // ---- SPIFFE leaf rules ----
  {
    title: 'leaf that is a CA',
    make: () => direct({ basicConstraints: { ca: true }, keyUsage: ['digitalSignature', 'keyCertSign'], commonName: 'leaf' }),
    reason: 'leaf_is_ca',
    openssl: accept,
    differs: 'X.509 lets a CA certificate be an end entity',
  },
  {
    title: 'leaf with keyCertSign',
    make: () => direct({ keyUsage: ['digitalSignature', 'keyCertSign'] }),
    reason: 'leaf_key_usage_forbidden',
    openssl: reject(/Key usage keyCertSign invalid for non-CA cert/i),
  },
  {
    title: 'leaf with cRLSign',
    make: () => direct({ keyUsage: ['digitalSignature', 'cRLSign'], commonName: 'leaf' }),
    reason: 'leaf_key_usage_forbidden',
    openssl: accept,
    differs: 'an X.509 rule for CAs only; the SPIFFE standard forbids it in a leaf',
  },
  {
    title: 'leaf without digitalSignature',
    make: () => direct({ keyUsage: ['keyEncipherment'] }),
    reason: 'leaf_digital_signature_missing',
    openssl: reject(/unsuitable certificate purpose/),
  },
  {
    title: 'leaf without keyUsage',
    make: () => direct({ keyUsage: null }),
    reason: 'leaf_key_usage_missing',
    openssl: accept,
    differs: 'X.509: no keyUsage means any usage; SPIFFE requires the extension',
  },
  {
    title: 'leaf without a URI SAN (DNS only)',
    make: () => direct({ commonName: 'leaf', sans: [{ type: 'dns', value: 'frontend.shop.svc' }] }),
    reason: 'leaf_uri_san_missing',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf without any SAN',
    make: () => direct({ commonName: 'leaf', sans: [] }),
    reason: 'leaf_uri_san_missing',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf with two URI SANs',
    make: () => direct({ sans: [{ type: 'uri', value: ID }, { type: 'uri', value: 'spiffe://example.org/ns/admin/sa/root' }] }),
    reason: 'leaf_uri_san_multiple',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf with a non-SPIFFE URI SAN',
    make: () => direct({ sans: [{ type: 'uri', value: 'https://frontend.shop.example' }] }),
    reason: 'leaf_uri_san_not_spiffe',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf whose URI SAN smuggles ", URI:spiffe://..." after a non-SPIFFE URI',
    make: () => direct({ sans: [{ type: 'uri', value: 'https://x.test/a, URI:spiffe://example.org/ns/admin/sa/root' }] }),
    reason: 'leaf_uri_san_not_spiffe',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf whose SPIFFE URI SAN smuggles ", URI:spiffe://..."',
    make: () => direct({ sans: [{ type: 'uri', value: `${ID}, URI:spiffe://example.org/ns/admin/sa/root` }] }),
    reason: 'leaf_spiffe_id_invalid',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf with an invalid SPIFFE ID (uppercase trust domain)',
    make: () => direct({ sans: [{ type: 'uri', value: 'spiffe://Example.org/ns/shop/sa/frontend' }] }),
    reason: 'leaf_spiffe_id_invalid',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf with an invalid SPIFFE ID (dot segment)',
    make: () => direct({ sans: [{ type: 'uri', value: 'spiffe://example.org/ns/../sa/frontend' }] }),
    reason: 'leaf_spiffe_id_invalid',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf whose SPIFFE ID is the bare trust domain (no path) is refused',
    make: () => direct({ sans: [{ type: 'uri', value: 'spiffe://example.org' }] }),
    reason: 'leaf_spiffe_id_no_path',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'leaf with an empty subject and a non-critical SAN',
    make: () => direct({ sanCritical: false }),
    reason: 'leaf_san_not_critical',
    openssl: reject(/Subject empty and Subject Alt Name extension not critical|subject name is empty/i),
  },
  {
    title: 'leaf with a subject and a non-critical SAN is fine',
    make: () => direct({ commonName: 'frontend', sanCritical: false }),
    openssl: accept,
  },

  // ---- trust domain ----
  {
    title: 'leaf and required trust domain other.org under an example.org root',
    make: () => ({ ...direct({}, 'spiffe://other.org/ns/shop/sa/frontend'), trustDomain: 'other.org' }),
    reason: 'ca_trust_domain_mismatch', // the example.org root cannot vouch for other.org
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'trust domain mismatch',
    make: () => ({ ...direct({}, 'spiffe://other.org/ns/shop/sa/frontend'), trustDomain: 'example.org' }),
    reason: 'trust_domain_mismatch',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'root from another trust domain',
    make: () => {
      const root = makeRoot('other.org');
      return { roots: [root], chain: [makeLeaf(root, ID)], trustDomain: 'example.org' };
    },
    reason: 'ca_trust_domain_mismatch',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },
  {
    title: 'intermediate from another trust domain',
    make: () => {
      const root = makeRoot();
      const inter = makeIntermediate(root, 'other.org');
      return { roots: [root], chain: [makeLeaf(inter, ID), inter], trustDomain: 'example.org' };
    },
    reason: 'ca_trust_domain_mismatch',
    openssl: accept,
    differs: SPIFFE_ONLY,
  },

  // ---- deliberate differences from OpenSSL's strict mode ----
  {
    title: 'intermediate with a non-critical basicConstraints',
    make: () => viaIntermediate({ basicConstraints: { ca: true, pathLen: 0, critical: false } }),
    differs: 'RFC 5280 requires CAs to mark it critical, but a relying party must still process it either way; the cA flag is what matters',
    openssl: reject(/basic constraints.*not marked critical|Basic Constraints of CA cert not marked critical/i),
  },
];

for (const row of rows) {
  test(`${row.reason ?? 'valid'}: ${row.title}`, (t) => {
    const s = row.make();
    const chain = s.chain.map((c) => c.cert);
    const roots = s.roots.map((c) => c.cert);
    const options = { now: AT, trustDomain: s.trustDomain ?? 'example.org' };
    if (row.reason) {
      const e = t.throws(() => verifyX509Svid(chain, roots, options), { instanceOf: SvidVerificationError });
      t.is(e?.reason, row.reason, e?.message);
      t.is(e?.code, `svid_${row.reason}`);
    } else {
      const v = verifyX509Svid(chain, roots, options);
      t.is(v.leaf, chain[0]!);
      t.is(v.path[0], chain[0]!);
      t.true(roots.includes(v.path[v.path.length - 1]!), 'the path ends at a root of the bundle');
    }
    const r = opensslVerify(tempDir(t), {
      roots: chainPem(...s.roots),
      leaf: s.chain[0]!.pem,
      intermediates: s.chain.length > 1 ? chainPem(...s.chain.slice(1)) : undefined,
      atTime: new Date(AT),
      purpose: row.purpose ?? 'sslclient',
      strict: !row.lenientOpenssl,
    });
    t.is(r.ok, row.openssl.ok, r.output);
    if (!row.openssl.ok) t.regex(r.output, row.openssl.error);
    // A row explains a disagreement with OpenSSL exactly when there is one: a stale note fails too.
    t.is(Boolean(row.differs), r.ok !== (row.reason === undefined), row.differs ? 'the row explains a disagreement that no longer exists' : "our verdict differs from OpenSSL's without a reason given");
  });
}

/** Properties of the identity parsers: SPIFFE IDs, PEM, DER, CSRs at the CA, X.509-SVID verification. */
import fc from 'fast-check';
import { Authority } from '../../src/ca/authority.js';
import { parseCertificate, type Certificate } from '../../src/identity/certificate.js';
import { createCsr, parseCsr } from '../../src/identity/csr.js';
import { decodeDer, encodeDer } from '../../src/identity/der.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { decodePem, encodePem } from '../../src/identity/pem.js';
import { MAX_SPIFFE_ID_BYTES, parseSpiffeId, parseTrustDomain, spiffeIdFromParts, SpiffeIdError } from '../../src/identity/spiffe-id.js';
import { verifyX509Svid } from '../../src/identity/svid-verify.js';
import { MeshidError } from '../../src/lib/errors.js';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki.js';
import { fuzz, mutate, mutationArb } from './harness.js';

/** Rethrows anything that is not a MeshidError: a parser may refuse input, never crash on it. */
function refusedOrOk<T>(f: () => T, kind: new (...a: never[]) => Error = MeshidError): T | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof kind) return undefined;
    throw e;
  }
}

// ---- SPIFFE IDs ----

const idChar = fc.constantFrom(...'abcz09._-/:@?#%ABZ~ é'.split(''), '//', '/.', '/..', 'spiffe://');
const idLike = fc.oneof(
  fc.string(),
  fc.array(idChar, { maxLength: 40 }).map((cs) => `spiffe://${cs.join('')}`),
  fc.tuple(fc.domain(), fc.array(fc.stringMatching(/^[A-Za-z0-9._-]{1,8}$/), { maxLength: 5 })).map(([d, segs]) => `spiffe://${d}${segs.map((s) => `/${s}`).join('')}`),
);

const SPIFFE_RE = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

fuzz('spiffe-id', 'every input is refused with a SpiffeIdError or parses to a canonical ID that round-trips', fc.property(idLike, (input) => {
  const id = refusedOrOk(() => parseSpiffeId(input), SpiffeIdError);
  if (!id) return;
  if (!SPIFFE_RE.test(id.uri)) throw new Error(`accepted a non-conforming ID ${JSON.stringify(id.uri)}`);
  if (Buffer.byteLength(id.uri) > MAX_SPIFFE_ID_BYTES) throw new Error('accepted an over-long ID');
  const segs = id.path.split('/').slice(1);
  if (segs.some((s) => s === '.' || s === '..')) throw new Error('accepted a dot segment');
  if (id.uri !== `spiffe://${id.trustDomain}${id.path}`) throw new Error('parts do not make up the URI');
  const again = spiffeIdFromParts(id.trustDomain, segs);
  if (again.uri !== id.uri) throw new Error('does not round-trip through its parts');
  if (parseTrustDomain(id.trustDomain) !== id.trustDomain) throw new Error('its trust domain does not parse alone');
}), { runs: 2000 });

// ---- PEM ----

fuzz('pem-roundtrip', 'any DER round-trips through encodePem/decodePem, with any text around it', fc.property(
  fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), fc.constantFrom('CERTIFICATE', 'PRIVATE KEY', 'CERTIFICATE REQUEST'),
  (der, before, after, label) => {
    const text = `${before.replace(/-----/g, '')}\n${encodePem(label, der)}${after.replace(/-----/g, '')}`;
    const blocks = decodePem(text);
    if (blocks.length !== 1 || blocks[0]!.label !== label || !blocks[0]!.der.equals(Buffer.from(der))) throw new Error('did not round-trip');
  }), { runs: 1000 });

fuzz('pem-mutated', 'arbitrary and mutated PEM text is refused with a MeshidError or decodes exactly the base64 of the body (nothing skipped)', fc.property(
  fc.oneof(fc.string({ maxLength: 200 }), fc.tuple(fc.uint8Array({ maxLength: 120 }), fc.array(mutationArb, { maxLength: 4 })).map(([d, ms]) => mutate(Buffer.from(encodePem('CERTIFICATE', d)), ms).toString('latin1'))),
  (text) => {
    const blocks = refusedOrOk(() => decodePem(text));
    for (const b of blocks ?? []) {
      if (!/^[A-Z0-9 ]+$/.test(b.label)) throw new Error(`odd label ${JSON.stringify(b.label)}`);
      // Node's base64 decoder skips bad characters silently; ours must have refused them.
      const body = text.slice(text.indexOf(`-----BEGIN ${b.label}-----`) + `-----BEGIN ${b.label}-----`.length, text.indexOf(`-----END ${b.label}-----`)).replace(/\s+/g, '');
      // (Unused padding bits may be non-zero, as RFC 4648 allows a decoder to accept: "AC==" is 00.)
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || !Buffer.from(body, 'base64').equals(b.der)) {
        throw new Error(`decoded bytes are not the body ${JSON.stringify(body)}`);
      }
    }
  }), { runs: 2000 });

// ---- DER ----

const root = makeRoot('example.org');
const inter = makeIntermediate(root, 'example.org');
const LEAF_ID = 'spiffe://example.org/ns/shop/sa/frontend';
const leaf = makeLeaf(inter, LEAF_ID);

/** Length encodings, minimal and not: the BER forms a DER decoder must refuse. */
const tlv: fc.Arbitrary<Buffer> = fc.letrec<{ node: Buffer }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small' },
    fc.tuple(fc.constantFrom(0x01, 0x02, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17), fc.uint8Array({ maxLength: 6 }), fc.nat(3)).map(([tag, v, form]) => withLength(tag, Buffer.from(v), form)),
    fc.tuple(fc.constantFrom(0x30, 0x31, 0xa0, 0xa3), fc.array(tie('node'), { maxLength: 3 }), fc.nat(3)).map(([tag, kids, form]) => withLength(tag, Buffer.concat(kids), form)),
  ),
})).node;

function withLength(tag: number, content: Buffer, form: number): Buffer {
  const n = content.length;
  if (form === 1 && n < 256) return Buffer.concat([Buffer.from([tag, 0x81, n]), content]); // long form where short fits (BER)
  if (form === 2 && n < 256) return Buffer.concat([Buffer.from([tag, 0x82, 0, n]), content]); // leading zero length byte (BER)
  if (form === 3 && tag & 0x20) return Buffer.concat([Buffer.from([tag, 0x80]), content, Buffer.from([0, 0])]); // indefinite (BER)
  return Buffer.concat([Buffer.from([tag, n]), content]);
}

fuzz('der-only', 'whatever decodeDer accepts re-encodes to the same bytes (DER only, no BER)', fc.property(
  fc.oneof(tlv, fc.tuple(fc.constantFrom(leaf.der, root.der), fc.array(mutationArb, { minLength: 1, maxLength: 3 })).map(([d, ms]) => mutate(d, ms))),
  (bytes) => {
    const node = refusedOrOk(() => decodeDer(bytes, 'input'));
    if (node && !encodeDer(node).equals(Buffer.from(bytes))) throw new Error(`accepted ${Buffer.from(bytes).toString('hex')} which re-encodes differently`);
  }), { runs: 1000 });

// ---- CSRs at the CA ----

const now = Date.now();
const ca = new Authority('example.org', { key: inter.key.privateKey, chain: [inter.cert, root.cert] }, { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 });
const csrKey = generateKeyPairSync('ec-p256');
const csrId = parseSpiffeId(LEAF_ID);
const csr = createCsr(csrId, csrKey);
const csrSpki = Buffer.from(csrKey.publicKey.export({ type: 'spki', format: 'der' }));

fuzz('csr-at-ca', 'a mutated CSR is refused with a MeshidError, or issues a leaf for the asked identity and the CSR\'s own key', fc.property(
  fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.boolean(),
  (ms, mutateText) => {
    const pem = mutateText ? mutate(Buffer.from(csr.pem), ms).toString('latin1') : encodePem('CERTIFICATE REQUEST', mutate(csr.der, ms));
    const issued = refusedOrOk(() => ca.issue({ csrPem: pem, identity: csrId, now }));
    if (!issued) {
      refusedOrOk(() => parseCsr(pem)); // the parser alone never crashes either
      return;
    }
    const cert = parseCertificate(issued.der);
    const v = verifyX509Svid([cert, inter.cert], [root.cert], { now, trustDomain: 'example.org' });
    if (v.spiffeId.uri !== LEAF_ID) throw new Error(`issued for ${v.spiffeId.uri}`);
    const spki = Buffer.from(cert.publicKey().export({ type: 'spki', format: 'der' }));
    if (!spki.equals(csrSpki)) throw new Error('issued a certificate for a key the CSR signer does not hold');
  }), { runs: 300 });

// ---- X.509-SVID verification ----

const spkiOf = (c: Certificate): Buffer => Buffer.from(c.publicKey().export({ type: 'spki', format: 'der' }));

fuzz('svid-verify-mutated', 'a valid chain with a byte of the leaf or intermediate changed never verifies; a changed root verifies only if its name and key did not change', fc.property(
  fc.constantFrom(0, 1, 2), fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
  (which, ms) => {
    const ders = [leaf.der, inter.der, root.der];
    const original = ders[which]!;
    const changed = mutate(original, ms);
    fc.pre(!changed.equals(original));
    const parsed = refusedOrOk(() => parseCertificate(changed));
    if (!parsed) return;
    const certs: Certificate[] = ders.map((d, i) => (i === which ? parsed : parseCertificate(d)));
    const v = refusedOrOk(() => verifyX509Svid(certs.slice(0, 2), certs.slice(2), { now, trustDomain: 'example.org' }));
    if (!v) return;
    // A trust anchor is its name and key (its self-signature is not checked, as in OpenSSL): a root
    // changed elsewhere may still anchor the chain. Any other change must break verification.
    const sameAnchor = which === 2 && parsed.subject.equals(root.cert.subject) && spkiOf(parsed).equals(spkiOf(root.cert));
    if (!sameAnchor) throw new Error(`a chain with certificate ${which} changed verified as ${v.spiffeId.uri}: ${changed.toString('hex')}`);
  }), { runs: 500 });

const otherRoot = makeRoot('example.org', { commonName: 'another root' });
fuzz('svid-verify-paths', 'chains reordered, truncated or against another root never verify, and the valid one does', fc.property(
  fc.array(fc.constantFrom(0, 1, 2), { maxLength: 4 }), fc.boolean(),
  (order, other) => {
    const pool = [leaf.cert, inter.cert, root.cert];
    const chain = order.map((i) => pool[i]!);
    const roots = other ? [otherRoot.cert] : [root.cert];
    const v = refusedOrOk(() => verifyX509Svid(chain, roots, { now, trustDomain: 'example.org' }));
    const valid = !other && chain[0] === leaf.cert && chain.includes(inter.cert);
    if (v && !valid) throw new Error(`verified chain [${order.join(',')}] against ${other ? 'another root' : 'the root'}`);
    if (valid && !v && chain.length <= 3) {
      // A valid path plus extra copies is allowed to verify or not; leaf+inter(+root) must.
      if (order.length === 2 || (order.length === 3 && order[2] === 2)) throw new Error(`refused the valid chain [${order.join(',')}]`);
    }
  }), { runs: 300 });

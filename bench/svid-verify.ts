/**
 * Cold X.509-SVID verification of a leaf + intermediate chain against a one-root bundle, as
 * ext_authz does for a peer certificate it has not seen: every iteration parses fresh Certificate
 * objects (so nothing is cached but the bundle's root), then verifies. The baseline measured in
 * the same run is the raw crypto of that work: two ECDSA P-256 verifies with pre-imported keys.
 * Run: npm run build && node dist/bench/svid-verify.js
 */
import crypto from 'node:crypto';
import { parseCertificate } from '../src/identity/certificate.js';
import { childrenOf, decodeDer, encodeDer, Tag } from '../src/identity/der.js';
import { verifyX509Svid } from '../src/identity/svid-verify.js';
import { makeIntermediate, makeLeaf, makeRoot } from '../test/helpers/pki.js';

const ROUNDS = 15;
const PER_ROUND = 200;

const root = makeRoot();
const inter = makeIntermediate(root);
const leaf = makeLeaf(inter, 'spiffe://example.org/ns/shop/sa/frontend');
const roots = [parseCertificate(root.der)];

/** Median over rounds of the mean microseconds per operation. */
function measure(op: () => void): number {
  for (let i = 0; i < PER_ROUND; i++) op(); // warm up the JIT
  const perRound: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < PER_ROUND; i++) op();
    perRound.push(Number(process.hrtime.bigint() - start) / 1e3 / PER_ROUND);
  }
  perRound.sort((a, b) => a - b);
  return perRound[Math.floor(ROUNDS / 2)]!;
}

const parseOnly = measure(() => {
  parseCertificate(leaf.der);
  parseCertificate(inter.der);
});
const parseAndVerify = measure(() => {
  verifyX509Svid([parseCertificate(leaf.der), parseCertificate(inter.der)], roots);
});
const parsedOnce = [parseCertificate(leaf.der), parseCertificate(inter.der)];
const verifyWarm = measure(() => {
  verifyX509Svid(parsedOnce, roots); // keys imported and tbs encoded once
});

// Baseline: the two signature checks alone, over the real tbsCertificates, keys already imported.
const tbsOf = (certDer: Buffer) => encodeDer(childrenOf(decodeDer(certDer, 'certificate'), Tag.SEQUENCE, 'certificate')[0]!);
const leafTbs = tbsOf(leaf.der);
const interTbs = tbsOf(inter.der);
const leafSig = crypto.sign('sha256', leafTbs, inter.key.privateKey);
const interSig = crypto.sign('sha256', interTbs, root.key.privateKey);
const rawCrypto = measure(() => {
  crypto.verify('sha256', leafTbs, inter.key.publicKey, leafSig);
  crypto.verify('sha256', interTbs, root.key.publicKey, interSig);
});

const coldVerify = parseAndVerify - parseOnly;
console.log(`chain: leaf + intermediate, bundle of 1 root, EC P-256; median of ${ROUNDS} rounds x ${PER_ROUND}`);
console.log(`parse 2 certificates:              ${parseOnly.toFixed(1)} us`);
console.log(`parse + verify (cold):             ${parseAndVerify.toFixed(1)} us`);
console.log(`verify alone, cold (difference):   ${coldVerify.toFixed(1)} us`);
console.log(`verify, certificates already used: ${verifyWarm.toFixed(1)} us`);
console.log(`raw crypto bound (2 ECDSA verify): ${rawCrypto.toFixed(1)} us`);
console.log(`cold parse+verify / raw crypto:    ${(parseAndVerify / rawCrypto).toFixed(2)}x`);
console.log(
  JSON.stringify({
    parse_us: round(parseOnly),
    parse_and_verify_cold_us: round(parseAndVerify),
    verify_cold_us: round(coldVerify),
    verify_warm_us: round(verifyWarm),
    raw_crypto_us: round(rawCrypto),
    ratio_to_raw: round(parseAndVerify / rawCrypto),
  }),
);

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

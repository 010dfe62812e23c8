/**
 * bench:ca: the CA's issuance loop on one core (one thread, no worker pool), next to the raw
 * crypto bound measured in the same run (one ECDSA P-256 verify + one ECDSA P-256 sign per
 * certificate, keys pre-imported), and EC P-256 key + CSR generation per operation.
 *
 * Every CSR is distinct (its own fresh key), generated before the timed loops, so nothing is
 * cached across iterations. Each round interleaves the loops in small batches (see round_).
 * The last line of output is one JSON object with the figures.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { Authority } from '../src/ca/authority.js';
import { createRootCertificate } from '../src/ca/ca-certificates.js';
import { LeafTemplate } from '../src/ca/leaf-template.js';
import { parseCertificate, randomSerial } from '../src/identity/certificate.js';
import { createCsr, parseCsr } from '../src/identity/csr.js';
import { childrenOf, decodeDer, elementBytes, encodeDer, readBits, Tag } from '../src/identity/der.js';
import forge from '../src/identity/forge-asn1.js';
import { generateKeyPairSync, importSpki } from '../src/identity/keys.js';
import { certificatePem, decodePem } from '../src/identity/pem.js';
import { spiffeIdFromParts, type SpiffeId } from '../src/identity/spiffe-id.js';

const N = Number(process.env.BENCH_CA_N ?? 2000);
const ROUNDS = Number(process.env.BENCH_CA_ROUNDS ?? 5);
const TD = 'bench.local';

interface Sample {
  id: SpiffeId;
  pem: string;
  /** For the raw bound: the CSR's key as a JWK (imported before each round), signed bytes, signature. */
  jwk: crypto.JsonWebKey;
  signed: Buffer;
  signature: Buffer;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

// ---- key + CSR generation, per operation ----
const genMs: number[] = [];
const samples: Sample[] = [];
for (let i = 0; i < N; i++) {
  const id = spiffeIdFromParts(TD, ['ns', 'bench', 'sa', `workload-${i}`]);
  const t0 = process.hrtime.bigint();
  const key = generateKeyPairSync('ec-p256');
  const csr = createCsr(id, key);
  genMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  samples.push({ id, pem: csr.pem, jwk: key.publicKey.export({ format: 'jwk' }), ...signedPartOf(csr.der) });
}
genMs.sort((a, b) => a - b);

/** The CertificationRequestInfo bytes as received and the signature over them. */
function signedPartOf(der: Buffer): { signed: Buffer; signature: Buffer } {
  const [, , sigNode] = childrenOf(decodeDer(der, 'CSR'), Tag.SEQUENCE, 'CSR');
  return { signed: elementBytes(der, 0, 'CSR'), signature: readBits(sigNode, 'CSR signature').bytes };
}

// ---- the CA under test, in memory ----
const rootKey = generateKeyPairSync('ec-p256');
const now = Date.now();
const root = createRootCertificate(TD, rootKey, now);
const authority = new Authority(TD, { key: rootKey.privateKey, chain: [root] }, { defaultTtlMs: 3_600_000, maxTtlMs: 3_600_000 });

// Sanity: the raw loop verifies what it should (a wrong slice would make every verify false).
if (!crypto.verify('sha256', samples[0]!.signed, crypto.createPublicKey({ key: samples[0]!.jwk, format: 'jwk' }), samples[0]!.signature)) throw new Error('raw loop: CSR signature slice is wrong');

const BATCH = 50;

/** The CA's whole path for samples[from..to): seconds taken. */
function fullBatch(from: number, to: number): number {
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = from; i < to; i++) bytes += authority.issue({ csrPem: samples[i]!.pem, identity: samples[i]!.id, now }).chainPem[0]!.length;
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bytes === 0) throw new Error('nothing issued');
  return sec;
}

/**
 * One verify of the CSR signature and one sign of a TBS-sized message per certificate: seconds
 * taken. The keys are imported before the timed loop (untimed) and fresh for the first pass:
 * OpenSSL 3 finishes setting up an imported key on its first use (about a quarter of a verify)
 * and caches that in the key, so verifying with keys already used measures less work than the CA
 * must do for each new CSR. The reused-key figure is printed too, for comparison.
 */
const tbsSized = crypto.randomBytes(420);
function rawBatch(keys: KeyObject[], from: number): number {
  const t0 = process.hrtime.bigint();
  let ok = 0;
  for (let k = 0; k < keys.length; k++) {
    const s = samples[from + k]!;
    if (crypto.verify('sha256', s.signed, keys[k]!, s.signature)) ok++;
    crypto.sign('sha256', tbsSized, rootKey.privateKey);
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  if (ok !== keys.length) throw new Error('raw loop: a verify failed');
  return sec;
}

/**
 * The same with each CSR's key imported in the loop, as the CA must for every new CSR: the JWK
 * form, the cheapest node:crypto offers (about half the cost of SPKI DER, measured). All three
 * steps are OpenSSL's work, so this is what the issuance loop can approach at best.
 */
function rawImportBatch(from: number, to: number): number {
  const t0 = process.hrtime.bigint();
  let ok = 0;
  for (let i = from; i < to; i++) {
    const s = samples[i]!;
    if (crypto.verify('sha256', s.signed, crypto.createPublicKey({ key: s.jwk, format: 'jwk' }), s.signature)) ok++;
    crypto.sign('sha256', tbsSized, rootKey.privateKey);
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  if (ok !== to - from) throw new Error('raw loop with import: a verify failed');
  return sec;
}

/**
 * One round over all samples, in small batches that alternate between the loops, so that the
 * load other processes put on the machine falls on both alike and the ratio stays meaningful.
 */
function round_(): { full: number; raw: number; rawReused: number; rawImport: number } {
  const total = { full: 0, raw: 0, rawReused: 0, rawImport: 0 };
  for (let from = 0; from < N; from += BATCH) {
    const to = Math.min(N, from + BATCH);
    const keys = samples.slice(from, to).map((s) => crypto.createPublicKey({ key: s.jwk, format: 'jwk' }));
    total.raw += rawBatch(keys, from);
    total.rawReused += rawBatch(keys, from);
    total.full += fullBatch(from, to);
    total.rawImport += rawImportBatch(from, to);
  }
  return { full: N / total.full, raw: N / total.raw, rawReused: N / total.rawReused, rawImport: N / total.rawImport };
}

// Where the time goes, stage by stage (CPU microseconds per certificate: user + system time of
// this process, which other processes on a shared machine distort less than wall-clock time), on
// a separate pass.
function stages(): Record<string, number> {
  const us = (fn: (i: number) => void) => {
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) fn(i);
    const c = process.cpuUsage(c0);
    return round((c.user + c.system) / N);
  };
  const parsed = samples.map((s) => parseCsr(s.pem));
  const csrDers = samples.map((s) => decodePem(s.pem)[0]!.der);
  const spkis = parsed.map((p) => p.spki);
  const template = new LeafTemplate(root, rootKey.privateKey);
  const ders: Buffer[] = [];
  const forgeOptions = { strict: true, parseAllBytes: true, decodeBitStrings: false } as unknown as boolean;
  return {
    parse_pem_csr_and_import_key: us((i) => parseCsr(samples[i]!.pem)),
    of_which_pem_decode: us((i) => decodePem(samples[i]!.pem)),
    of_which_der_decode: us((i) => decodeDer(csrDers[i]!, 'CSR')),
    of_which_import_key: us((i) => importSpki(spkis[i]!, 'CSR')),
    // What DER decoding cost before (node-forge's decoder, then the same re-encoding check), for comparison.
    reference_forge_der_decode: us((i) => {
      const node = forge.asn1.fromDer(forge.util.createBuffer(csrDers[i]!.toString('binary')), forgeOptions);
      if (!encodeDer(node).equals(csrDers[i]!)) throw new Error('forge reference: re-encoding differs');
    }),
    verify_csr_signature: us((i) => parsed[i]!.verifySignature()),
    build_and_sign_leaf: us((i) =>
      ders.push(
        template.build({ serial: randomSerial(), spki: parsed[i]!.spki, keyKind: 'ec', spiffeId: samples[i]!.id.uri, notBefore: new Date(now), notAfter: new Date(now + 3_600_000) }),
      ),
    ),
    of_which_ecdsa_sign: us(() => crypto.sign('sha256', tbsSized, rootKey.privateKey)),
    pem_encode_leaf: us((i) => certificatePem(ders[i]!)),
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// Sanity: what the loop produces is a certificate for the CSR's identity, signed by the root.
{
  const leaf = parseCertificate(authority.issue({ csrPem: samples[0]!.pem, identity: samples[0]!.id, now }).der);
  const san = leaf.sans[0];
  if (!leaf.verifySignedBy(rootKey.publicKey) || san?.type !== 'uri' || san.value !== samples[0]!.id.uri) throw new Error('the issuance loop does not produce the expected certificate');
}
round_(); // warm-up: JIT, OpenSSL tables
const rounds = Array.from({ length: ROUNDS }, round_);
const full = rounds.map((r) => r.full);
const raw = rounds.map((r) => r.raw);
const rawReused = rounds.map((r) => r.rawReused);
const rawImport = rounds.map((r) => r.rawImport);
// The best round is the least disturbed one; the ratio is the median of per-round ratios, since
// within a round both loops ran interleaved under the same load.
const best = rounds.reduce((a, b) => (b.full > a.full ? b : a));
const certsPerS = best.full;
const rawPerS = best.raw;
const rawReusedPerS = best.rawReused;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ratio = median(rounds.map((r) => r.full / r.raw));
const ratioReused = median(rounds.map((r) => r.full / r.rawReused));
const ratioImport = median(rounds.map((r) => r.full / r.rawImport));
const boundImportToBound = median(rounds.map((r) => r.rawImport / r.raw));
const stageUs = stages();

const result = {
  certs_per_s: Math.round(certsPerS),
  raw_bound_per_s: Math.round(rawPerS),
  ratio: round(ratio, 3),
  raw_bound_reused_keys_per_s: Math.round(rawReusedPerS),
  ratio_vs_reused_keys: round(ratioReused, 3),
  raw_bound_with_import_per_s: Math.round(best.rawImport),
  ratio_vs_bound_with_import: round(ratioImport, 3),
  bound_with_import_to_bound: round(boundImportToBound, 3),
  keygen_csr_ms_p50: round(percentile(genMs, 50), 4),
  keygen_csr_ms_p99: round(percentile(genMs, 99), 4),
  n: N,
  rounds: ROUNDS,
  stages_us: stageUs,
};
console.log(`bench:ca  ${N} distinct EC P-256 CSRs, ${ROUNDS} rounds, one thread (figures from the best round; ratio: median of per-round ratios)`);
console.log(`  issuance loop (parse PEM CSR, verify, build+sign 1h leaf, PEM)  ${result.certs_per_s} certs/s   rounds: ${full.map(Math.round).join(' ')}`);
console.log(`  raw bound (1 ECDSA P-256 verify + 1 sign, keys pre-imported)    ${result.raw_bound_per_s} /s   rounds: ${raw.map(Math.round).join(' ')}`);
console.log(`  ratio                                                          ${result.ratio}   (target >= 0.70, issue 13)`);
console.log(`  (raw bound with keys already used once: ${result.raw_bound_reused_keys_per_s} /s, ratio ${result.ratio_vs_reused_keys}; rounds: ${rawReused.map(Math.round).join(' ')})`);
console.log(`  raw bound with each CSR key imported in the loop (JWK, as the CA does): ${result.raw_bound_with_import_per_s} /s, rounds: ${rawImport.map(Math.round).join(' ')}`);
console.log(`    issuance / that bound ${result.ratio_vs_bound_with_import}; that bound / the bound above ${result.bound_with_import_to_bound} (the most any issuance loop can reach against the target's bound)`);
console.log(`  EC P-256 key + CSR generation                                  p50 ${result.keygen_csr_ms_p50} ms, p99 ${result.keygen_csr_ms_p99} ms (target p50 < 1 ms)`);
console.log(`  stages (CPU us per op): ${Object.entries(stageUs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
console.log(JSON.stringify(result));

/**
 * npm run bench:partners
 *
 * What partner CAs (--partner-cas) and the audit fields add to ext_authz's hot path, in process,
 * each pair interleaved in one run:
 * (a) the peer certificate check of a certificate already seen (the steady state: one cache hit
 *     per request), for a partner CA certificate mapped by CN against a mesh SVID; ratio partner
 *     over mesh (target about 1: both are one map look-up);
 * (b) one decision line for a request with a partner certificate (serial, SHA-256, partner on
 *     the line) against the same line without them; ratio with over without;
 * (c) the first check of a certificate (path validation, mapping, SHA-256; cached afterwards),
 *     partner against mesh.
 *
 * Prints the figures, then, as the last line, one JSON object with them. Bounded: a few seconds.
 */
import pino from 'pino';
import { DecisionLog } from '../src/authz/decision-log.js';
import { denyDecision } from '../src/authz/engine.js';
import type { AuthzInput, PeerCertificateStatus } from '../src/authz/facts.js';
import { buildPartnerTrust, parsePartnerMapping } from '../src/authz/partner-cas.js';
import { peerCertificateChecker } from '../src/authz/peer-certificate.js';
import { OID } from '../src/identity/oids.js';
import { verifyX509Svid } from '../src/identity/svid-verify.js';
import { createLogger } from '../src/observability/logger.js';
import { makeLeaf, makeRoot } from '../test/helpers/pki.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 5 : 25;
const PER_ROUND = quick ? 2_000 : 20_000;
const TD = 'cluster.local';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** ns per call of each function, rounds interleaved so both see the same machine. */
function pair(a: () => void, b: () => void, perRound = PER_ROUND): [number, number] {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [f, out] of [[a, ta], [b, tb]] as const) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < perRound; i++) f();
      out.push(Number(process.hrtime.bigint() - t0) / perRound);
    }
  }
  return [median(ta), median(tb)];
}

const mesh = makeRoot(TD);
const partnerCa = makeRoot(TD, { commonName: 'Globex Root CA', sans: [] });
const trust = buildPartnerTrust(
  parsePartnerMapping('partners:\n  - {name: globex, bundle: globex.pem, match: [{o: Nobody}, {cn: api-client.globex.example}]}\n', '/bench/partners.yaml'),
  () => partnerCa.pem,
  TD,
);
const meshLeaf = encodeURIComponent(makeLeaf(mesh, `spiffe://${TD}/ns/shop/sa/frontend`).pem);
const partnerLeaf = encodeURIComponent(makeLeaf(partnerCa, undefined, { subject: [{ oid: OID.commonName, value: 'api-client.globex.example' }], sans: [], extKeyUsage: [OID.clientAuth] }).pem);
// The manager hands out the same array until the bundle changes (a new one clears the cache).
const meshRoots = [mesh.cert];
const checker = peerCertificateChecker({ trustRoots: () => meshRoots, verify: verifyX509Svid, trustDomain: TD, partners: () => trust, now: () => Date.now() });
const first = { mesh: checker.check(meshLeaf), partner: checker.check(partnerLeaf) };
if (first.mesh.status !== 'verified' || first.partner.status !== 'mapped') throw new Error(`bench set-up: ${JSON.stringify(first)}`);

// (a) steady state
const [partnerHitNs, meshHitNs] = pair(() => checker.check(partnerLeaf), () => checker.check(meshLeaf));

// (b) decision lines
// /dev/null through SonicBoom, batched as the agent's stdout buffer is, but synchronous so a tight loop never drops lines.
const sink = pino.destination({ dest: '/dev/null', sync: true, minLength: 8_192 }) as unknown as NodeJS.WritableStream;
const log = new DecisionLog(createLogger({ destination: sink }), { sampleRate: 1 });
const base: AuthzInput = { principal: 'CN=api-client.globex.example', method: 'GET', path: '/api/partner/orders', host: 'api.example.org', headers: { 'user-agent': 'curl/8' } };
const withFacts: PeerCertificateStatus = first.partner;
const withoutFacts: PeerCertificateStatus = { status: 'mapped', spiffeId: first.partner.spiffeId };
const decision = denyDecision('no_allow_policy_matched', 'rev');
let n = 0;
const [lineWithNs, lineWithoutNs] = pair(
  () => log.record({ decisionId: `d${n++}`, requestId: 'r', input: { ...base, peerCertificate: withFacts }, decision, latencyUs: 10 }),
  () => log.record({ decisionId: `d${n++}`, requestId: 'r', input: { ...base, peerCertificate: withoutFacts }, decision, latencyUs: 10 }),
  PER_ROUND / 10,
);

// (c) first sight (no cache): a fresh checker per call
const fresh = () => peerCertificateChecker({ trustRoots: () => meshRoots, verify: verifyX509Svid, trustDomain: TD, partners: () => trust, now: () => Date.now() });
const [partnerMissNs, meshMissNs] = pair(() => fresh().check(partnerLeaf), () => fresh().check(meshLeaf), quick ? 20 : 200);

const r = (x: number) => Math.round(x * 1000) / 1000;
const figures = {
  cachedCheckNs: { partner: Math.round(partnerHitNs), mesh: Math.round(meshHitNs), ratio: r(partnerHitNs / meshHitNs) },
  decisionLineNs: { withAuditFields: Math.round(lineWithNs), without: Math.round(lineWithoutNs), ratio: r(lineWithNs / lineWithoutNs) },
  firstCheckUs: { partner: r(partnerMissNs / 1000), mesh: r(meshMissNs / 1000), ratio: r(partnerMissNs / meshMissNs) },
};
console.log(`(a) cached peer certificate check: partner ${figures.cachedCheckNs.partner} ns, mesh ${figures.cachedCheckNs.mesh} ns, ratio ${figures.cachedCheckNs.ratio}`);
console.log(`(b) decision line: with serial/sha256/partner ${figures.decisionLineNs.withAuditFields} ns, without ${figures.decisionLineNs.without} ns, ratio ${figures.decisionLineNs.ratio}`);
console.log(`(c) first check (verify, map, hash): partner ${figures.firstCheckUs.partner} us, mesh ${figures.firstCheckUs.mesh} us, ratio ${figures.firstCheckUs.ratio}`);
console.log(JSON.stringify(figures));

/**
 * Partner CAs the operator trusts but does not run (--partner-cas): the mapping file's strict
 * validation, path validation and mapping of a partner's certificate, and the ext_authz service
 * deciding on the mapped principal, with the audit fields on every decision line.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { buildPartnerTrust, parsePartnerMapping, type PartnerTrust } from '../../src/authz/partner-cas.js';
import { loadPartnerCas, startPartnerCas } from '../../src/authz/partner-cas-file.js';
import { noopAuthzMetrics } from '../../src/authz/metrics.js';
import { startAuthzService } from '../../src/authz/server.js';
import { readDecisionLine, replayOne } from '../../src/authz/replay.js';
import { OID } from '../../src/identity/oids.js';
import { isMeshidError } from '../../src/lib/errors.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeIntermediate, makeLeaf, makeRoot, type CertOptions, type Issued } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { authzClient, capturingLogger, checkRequest, metadataOf } from './helpers/authz-client.js';
import { compileDescs, policyDoc } from './helpers/policies.js';

const TD = 'cluster.local';
const FRONTEND = `spiffe://${TD}/ns/shop/sa/frontend`;

function partnerCa(commonName: string): Issued {
  // A partner's own PKI: no SPIFFE ID anywhere.
  return makeRoot(TD, { commonName, sans: [] });
}

function partnerLeaf(ca: Issued, subject: { cn?: string; o?: string }, o: CertOptions = {}): Issued {
  const attrs = [
    ...(subject.o !== undefined ? [{ oid: OID.organization, value: subject.o }] : []),
    ...(subject.cn !== undefined ? [{ oid: OID.commonName, value: subject.cn }] : []),
  ];
  return makeLeaf(ca, undefined, { subject: attrs, sans: [], extKeyUsage: [OID.clientAuth], ...o });
}

function trustOf(yaml: string, bundles: Record<string, string>): PartnerTrust {
  return buildPartnerTrust(parsePartnerMapping(yaml, '/etc/meshid/partners.yaml'), (f) => {
    const text = bundles[path.basename(f)];
    if (text === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return text;
  }, TD);
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isMeshidError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'no error';
}

const GLOBEX_CA = partnerCa('Globex Root CA');
const INITECH_CA = partnerCa('Initech Root CA');
const MAPPING = `
partners:
  - name: globex
    bundle: globex-ca.pem
    match:
      - cn: api-client.globex.example
      - o: Globex Ops
  - name: initech
    bundle: initech-ca.pem
    match:
      - dns: gw.initech.example
`;
const BUNDLES = { 'globex-ca.pem': GLOBEX_CA.pem, 'initech-ca.pem': INITECH_CA.pem };

test('the mapping file is validated strictly: every error names the file, the entry and the field', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['partners: [', /partners\.yaml: YAML: /],
    ['partner: []', /partners\.yaml: partner: unknown field/],
    ['{}', /partners\.yaml: partners: required/],
    ['partners:\n  - name: Globex\n    bundle: a.pem\n    match: [{cn: x}]', /partners\[0\] \(Globex\)\.name: partner name "Globex" must be/],
    ['partners:\n  - bundle: a.pem\n    match: [{cn: x}]', /partners\[0\]\.name: required/],
    ['partners:\n  - name: globex\n    match: [{cn: x}]', /partners\[0\] \(globex\)\.bundle: required/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: []', /partners\[0\] \(globex\)\.match: required: a non-empty list/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{cnn: x}]', /partners\[0\] \(globex\)\.match\[0\]\.cnn: unknown field/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{cn: x, o: y}]', /partners\[0\] \(globex\)\.match\[0\]: exactly one of cn, o, dns, sha256 \(found cn, o\)/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{sha256: abc}]', /match\[0\]\.sha256: "abc" is not a SHA-256 fingerprint/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{dns: "*.globex.example"}]', /match\[0\]\.dns: .* is not a DNS name \(wildcards are not matched\)/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{cn: ""}]', /match\[0\]\.cn: expected a non-empty string/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{cn: 7}]', /match\[0\]\.cn: expected a non-empty string/],
    ['partners:\n  - name: globex\n    bundle: a.pem\n    match: [{cn: x}]\n    principal: y', /partners\[0\] \(globex\)\.principal: unknown field/],
    ['partners:\n  - {name: globex, bundle: a.pem, match: [{cn: x}]}\n  - {name: globex, bundle: b.pem, match: [{cn: y}]}', /partners\[1\] \(globex\)\.name: partner "globex" is listed twice/],
    ['partners:\n  - name: globex\n    name: initech\n    bundle: a.pem\n    match: [{cn: x}]', /YAML: .*[Uu]nique|YAML: .*duplicate|YAML: Map keys must be unique/],
  ];
  for (const [yaml, expected] of cases) {
    const e = errorOf(() => parsePartnerMapping(yaml, '/etc/meshid/partners.yaml'));
    t.regex(e, /^partner_cas_invalid: \/etc\/meshid\/partners\.yaml: /, yaml);
    t.regex(e, expected, yaml);
  }
  // Bundles: unreadable, not PEM, or holding a certificate that is not a CA.
  const leafOnly = partnerLeaf(GLOBEX_CA, { cn: 'x' });
  const one = 'partners:\n  - {name: globex, bundle: globex-ca.pem, match: [{cn: x}]}';
  t.regex(errorOf(() => trustOf(one, {})), /partners\[0\] \(globex\)\.bundle: cannot read \/etc\/meshid\/globex-ca\.pem: ENOENT/);
  t.regex(errorOf(() => trustOf(one, { 'globex-ca.pem': 'hello' })), /partners\[0\] \(globex\)\.bundle: .*globex-ca\.pem/);
  t.regex(errorOf(() => trustOf(one, { 'globex-ca.pem': leafOnly.pem })), /partners\[0\] \(globex\)\.bundle: .*is not a CA.*a partner bundle holds CA certificates only/);
  // Relative bundle paths are read next to the mapping file; sha256 accepts colons and upper case.
  const m = parsePartnerMapping('partners:\n  - {name: globex, bundle: ca/g.pem, match: [{sha256: "AB:CD:' + 'ef'.repeat(30) + '"}, {dns: GW.Globex.Example}]}', '/etc/meshid/partners.yaml');
  t.deepEqual(m.partners[0], { name: 'globex', bundle: '/etc/meshid/ca/g.pem', match: [{ kind: 'sha256', value: `abcd${'ef'.repeat(30)}` }, { kind: 'dns', value: 'gw.globex.example' }] });
});

test('a partner certificate is path-validated against its own bundle and mapped by CN, O, DNS SAN or fingerprint', (t) => {
  const trust = trustOf(MAPPING, BUNDLES);
  const now = Date.now();
  t.deepEqual(trust.partners.map((p) => p.spiffeId), [`spiffe://${TD}/partner/globex`, `spiffe://${TD}/partner/initech`]);
  const byCn = trust.verify([partnerLeaf(GLOBEX_CA, { o: 'Globex', cn: 'api-client.globex.example' }).cert], now);
  t.like(byCn, { kind: 'mapped', partner: 'globex', spiffeId: `spiffe://${TD}/partner/globex` });
  t.like(trust.verify([partnerLeaf(GLOBEX_CA, { o: 'Globex Ops', cn: 'batch-7' }).cert], now), { kind: 'mapped', partner: 'globex' });
  const byDns = partnerLeaf(INITECH_CA, { cn: 'whatever' }, { sans: [{ type: 'dns', value: 'GW.initech.example' }] });
  t.like(trust.verify([byDns.cert], now), { kind: 'mapped', partner: 'initech' });
  // Through an intermediate the partner sends along.
  const inter = makeIntermediate(GLOBEX_CA, TD, { commonName: 'Globex Issuing CA', sans: [] });
  t.like(trust.verify([partnerLeaf(inter, { cn: 'api-client.globex.example' }).cert, inter.cert], now), { kind: 'mapped', partner: 'globex' });

  // Fingerprint: only that one certificate.
  const pinned = partnerLeaf(INITECH_CA, { cn: 'legacy' });
  const sha = createHash('sha256').update(pinned.der).digest('hex');
  const withPin = trustOf(`${MAPPING}      - sha256: "${sha.match(/../g)!.join(':')}"\n`, BUNDLES);
  t.like(withPin.verify([pinned.cert], now), { kind: 'mapped', partner: 'initech' });
  t.like(withPin.verify([partnerLeaf(INITECH_CA, { cn: 'legacy' }).cert], now), { kind: 'unmapped', partner: 'initech' });

  // Unmapped: the CA is a partner's, no match entry names the certificate; the reason says what it has.
  const stranger = trust.verify([partnerLeaf(GLOBEX_CA, { o: 'Globex', cn: 'intern-laptop' }).cert], now);
  t.like(stranger, { kind: 'unmapped', partner: 'globex' });
  t.regex((stranger as { reason: string }).reason, /CN="intern-laptop".*verifies against the CA of partner globex but matches none of its match entries/);
  // The CN of one partner's mapping from another partner's CA maps nothing.
  t.like(trust.verify([partnerLeaf(INITECH_CA, { cn: 'api-client.globex.example' }).cert], now), { kind: 'unmapped', partner: 'initech' });
  // Two CNs: neither is "the" CN.
  t.like(trust.verify([partnerLeaf(GLOBEX_CA, {}, { subject: [{ oid: OID.commonName, value: 'api-client.globex.example' }, { oid: OID.commonName, value: 'other' }] }).cert], now), { kind: 'unmapped' });

  // Unknown CA: not a partner certificate at all.
  t.deepEqual(trust.verify([partnerLeaf(partnerCa('Someone Else CA'), { cn: 'api-client.globex.example' }).cert], now), { kind: 'none' });
  // Same name as Globex's CA, another key: the signature does not verify.
  const impostor = partnerLeaf(partnerCa('Globex Root CA'), { cn: 'api-client.globex.example' });
  t.like(trust.verify([impostor.cert], now), { kind: 'invalid', partner: 'globex' });
  // Expired, not yet valid, and verified on the injected time.
  const expired = partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' }, { notBefore: new Date(now - 48 * 3_600_000), notAfter: new Date(now - 3_600_000) });
  const e = trust.verify([expired.cert], now);
  t.like(e, { kind: 'invalid', partner: 'globex' });
  t.regex((e as { reason: string }).reason, /does not verify against the CA of partner globex: .*expired at/);
  const good = partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' });
  t.regex((trust.verify([good.cert], now - 3_600_000) as { reason: string }).reason, /is not valid before/, 'judged at the time given');
  // Not a client certificate: serverAuth only, or a CA.
  const serverOnly = partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' }, { extKeyUsage: [OID.serverAuth] });
  t.regex((trust.verify([serverOnly.cert], now) as { reason: string }).reason, /extendedKeyUsage without clientAuth/);
  t.like(trust.verify([partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' }, { extKeyUsage: null }).cert], now), { kind: 'mapped' }, 'no EKU: any use');

  // Two partners on one CA both claiming a certificate: refused, never handed to the first.
  const shared = trustOf('partners:\n  - {name: a, bundle: globex-ca.pem, match: [{o: Globex}]}\n  - {name: b, bundle: globex-ca.pem, match: [{cn: x}]}', BUNDLES);
  const both = shared.verify([partnerLeaf(GLOBEX_CA, { o: 'Globex', cn: 'x' }).cert], now);
  t.like(both, { kind: 'invalid' });
  t.regex((both as { reason: string }).reason, /maps to partners a and b/);
  t.like(shared.verify([partnerLeaf(GLOBEX_CA, { o: 'Globex', cn: 'y' }).cert], now), { kind: 'mapped', partner: 'a' });
});

interface Gateway {
  check: (o: Parameters<typeof checkRequest>[0]) => Promise<Record<string, string | number | boolean | undefined>>;
  decisions: () => Array<Record<string, unknown>>;
  partnerSeen: Array<[string, string, number]>;
}

async function gateway(t: ExecutionContext, trust: PartnerTrust): Promise<Gateway> {
  const dir = tempDir(t);
  const policyDir = path.join(dir, 'policies');
  fs.mkdirSync(policyDir);
  fs.writeFileSync(path.join(policyDir, 'allow.yaml'), policyDoc({ name: 'allow-partners', action: 'ALLOW', rules: [{ from: [{ source: { principals: [`${TD}/partner/globex`] } }], to: [{ operation: { paths: ['/api/*'] } }] }] }));
  const { logger, lines } = capturingLogger();
  const clock = new FakeClock(Date.now());
  const mesh = makeRoot(TD);
  const meshRoots = [mesh.cert]; // one array until the bundle changes, as the SVID manager hands out
  const partnerSeen: Array<[string, string, number]> = [];
  const service = await startAuthzService(
    { socket: path.join(tempDir(t, 'meshid-sock-'), 'authz.sock'), policyDir, resyncMs: 0 },
    {
      logger,
      clock,
      trustDomain: TD,
      trustRoots: () => meshRoots,
      partners: () => trust,
      metrics: { ...noopAuthzMetrics, partnerCertificate: (p, sha, notAfter) => partnerSeen.push([p, sha, notAfter]) },
    },
  );
  const client = authzClient(`unix:${service.socketPath!}`);
  t.teardown(async () => {
    client.close();
    await service.close();
  });
  return {
    check: async (o) => metadataOf(await client.check(checkRequest({ method: 'GET', path: '/api/orders', ...o }))),
    decisions: () => lines().filter((l) => l.component === 'authz-decision') as Array<Record<string, unknown>>,
    partnerSeen,
  };
}

test('ext_authz: a mapped partner certificate is allowed by a policy on <td>/partner/<name>; unmapped, unknown-CA and expired ones are denied with their reason', async (t) => {
  const trust = trustOf(MAPPING, BUNDLES);
  const g = await gateway(t, trust);
  const good = partnerLeaf(GLOBEX_CA, { o: 'Globex', cn: 'api-client.globex.example' });
  // Envoy's principal for a certificate without a URI SAN is its subject; the mapping decides.
  const allowed = await g.check({ principal: 'CN=api-client.globex.example,O=Globex', certificate: encodeURIComponent(good.pem) });
  t.like(allowed, { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-partners' });
  t.like(await g.check({ principal: 'CN=api-client.globex.example,O=Globex', certificate: encodeURIComponent(good.pem), path: '/admin' }), { decision: 'deny', reason: 'no_allow_policy_matched' });
  // Whatever URI SAN a partner CA writes, it cannot claim a workload's identity.
  const claimsWorkload = partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' }, { sans: [{ type: 'uri', value: FRONTEND }] });
  const dressedUp = await g.check({ principal: FRONTEND, certificate: encodeURIComponent(claimsWorkload.pem) });
  t.like(dressedUp, { decision: 'allow', policy: 'shop/allow-partners' }, 'judged as partner globex, not as the frontend');

  const unmapped = await g.check({ principal: 'CN=intern', certificate: encodeURIComponent(partnerLeaf(GLOBEX_CA, { cn: 'intern' }).pem) });
  t.like(unmapped, { decision: 'deny', reason: 'peer_certificate_unmapped' });
  const unknown = await g.check({ principal: 'CN=api-client.globex.example', certificate: encodeURIComponent(partnerLeaf(partnerCa('Unknown CA'), { cn: 'api-client.globex.example' }).pem) });
  t.like(unknown, { decision: 'deny', reason: 'peer_certificate_invalid' });
  const now = Date.now();
  const expired = partnerLeaf(GLOBEX_CA, { cn: 'api-client.globex.example' }, { notBefore: new Date(now - 48 * 3_600_000), notAfter: new Date(now - 3_600_000) });
  t.like(await g.check({ principal: 'CN=api-client.globex.example', certificate: encodeURIComponent(expired.pem) }), { decision: 'deny', reason: 'peer_certificate_invalid' });
  // With partner CAs, a principal without the certificate cannot be judged.
  t.like(await g.check({ principal: FRONTEND }), { decision: 'deny', reason: 'peer_certificate_invalid' });
  t.like(await g.check({}), { decision: 'deny', reason: 'no_allow_policy_matched' }, 'plaintext: no principal, no certificate');

  // The audit trail: serial, fingerprint and partner on every certificate-authenticated line.
  const lines = g.decisions();
  const sha = (i: Issued) => createHash('sha256').update(i.der).digest('hex');
  t.like(lines[0], { outcome: 'allow', peer_certificate: 'mapped', peer_certificate_id: `spiffe://${TD}/partner/globex`, peer_certificate_serial: good.cert.serial, peer_certificate_sha256: sha(good), partner: 'globex' });
  t.like(lines[3], { outcome: 'deny', reason: 'peer_certificate_unmapped', peer_certificate: 'unmapped', partner: 'globex' });
  t.regex(String(lines[3]!.peer_certificate_id), /CN="intern"/);
  t.like(lines[4], { reason: 'peer_certificate_invalid' });
  t.is(lines[4]!.partner, undefined);
  t.regex(String(lines[4]!.peer_certificate_id), /issued by no trusted CA: no partner CA \(--partner-cas\) names its issuer/);
  t.truthy(lines[4]!.peer_certificate_serial);
  t.like(lines[5], { partner: 'globex', peer_certificate_serial: expired.cert.serial });
  t.regex(String(lines[6]!.peer_certificate_id), /include_peer_certificate/);
  t.is(lines[7]!.peer_certificate_serial, undefined);
  // The expiry watch hears of every partner certificate presented, cache hits included.
  t.deepEqual(g.partnerSeen.filter(([, s]) => s === sha(good)).length, 2);
  t.deepEqual(g.partnerSeen[0], ['globex', sha(good), good.cert.notAfter.getTime()]);

  // Replay reads the lines back: a mapped certificate is decided as its partner again.
  const candidate = compileDescs([{ name: 'allow-partners', action: 'ALLOW', rules: [{ from: [{ source: { principals: [`${TD}/partner/globex`] } }], to: [{ operation: { paths: ['/api/*'] } }] }] }]);
  const locked = compileDescs([{ name: 'allow-partners', action: 'ALLOW', rules: [{ from: [{ source: { principals: [`${TD}/partner/initech`] } }] }] }]);
  const read = readDecisionLine(JSON.stringify(lines[0]));
  if (read.kind !== 'decision') return t.fail(read.why);
  t.deepEqual(replayOne(read.decision, candidate, undefined, new Set()), { kind: 'unchanged' });
  t.like(replayOne(read.decision, locked, undefined, new Set()), { kind: 'changed', after: { outcome: 'deny' } });
  const unmappedRead = readDecisionLine(JSON.stringify(lines[3]));
  if (unmappedRead.kind !== 'decision') return t.fail(unmappedRead.why);
  t.like(replayOne(unmappedRead.decision, candidate, undefined, new Set()), { kind: 'unchanged' });
});

test('a mesh workload certificate keeps its own identity next to partner CAs, and one issued in the partner namespace names its partner', async (t) => {
  const trust = trustOf(MAPPING, BUNDLES);
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'p'));
  fs.writeFileSync(path.join(dir, 'p', 'a.yaml'), policyDoc({ name: 'a', action: 'ALLOW', rules: [{ from: [{ source: { principals: [FRONTEND.slice('spiffe://'.length), `${TD}/partner/acme`] } }] }] }));
  const { logger, lines } = capturingLogger();
  const mesh = makeRoot(TD);
  const service = await startAuthzService(
    { socket: path.join(tempDir(t, 'meshid-sock-'), 'authz.sock'), policyDir: path.join(dir, 'p'), resyncMs: 0 },
    { logger, clock: new FakeClock(Date.now()), trustDomain: TD, trustRoots: () => [mesh.cert], partners: () => trust },
  );
  const client = authzClient(`unix:${service.socketPath!}`);
  t.teardown(async () => {
    client.close();
    await service.close();
  });
  const frontend = makeLeaf(mesh, FRONTEND);
  t.like(metadataOf(await client.check(checkRequest({ principal: FRONTEND, certificate: encodeURIComponent(frontend.pem) }))), { decision: 'allow' });
  const acme = makeLeaf(mesh, `spiffe://${TD}/partner/acme`, { extKeyUsage: [OID.clientAuth] });
  t.like(metadataOf(await client.check(checkRequest({ principal: `spiffe://${TD}/partner/acme`, certificate: encodeURIComponent(acme.pem) }))), { decision: 'allow' });
  const decisions = lines().filter((l) => l.component === 'authz-decision');
  t.like(decisions[0], { peer_certificate: 'verified', peer_certificate_serial: frontend.cert.serial });
  t.is(decisions[0]!.partner, undefined);
  t.like(decisions[1], { peer_certificate: 'verified', peer_certificate_serial: acme.cert.serial, partner: 'acme' });
});

test('--partner-cas is hot-reloaded: a good edit swaps the mapping in, a bad edit keeps the last good one', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'partners.yaml');
  fs.writeFileSync(path.join(dir, 'globex-ca.pem'), GLOBEX_CA.pem);
  fs.writeFileSync(path.join(dir, 'initech-ca.pem'), INITECH_CA.pem);
  fs.writeFileSync(file, 'partners:\n  - {name: globex, bundle: globex-ca.pem, match: [{cn: a}]}\n');
  t.throws(() => loadPartnerCas(path.join(dir, 'missing.yaml'), TD), { message: /missing\.yaml: cannot read the partner CA mapping: ENOENT/ });
  const clock = new FakeClock(Date.now());
  const { logger, lines } = capturingLogger();
  const reloads: string[] = [];
  const source = await startPartnerCas({ file, trustDomain: TD, clock, logger, debounceMs: 20, resyncMs: 0, onReload: (r) => reloads.push(r) });
  t.teardown(() => source.close());
  let swaps = 0;
  source.subscribe(() => swaps++);
  const first = source.current();
  t.deepEqual(first.partners.map((p) => p.name), ['globex']);

  const settle = async (done: () => boolean) => {
    for (let i = 0; i < 200 && !done(); i++) {
      await new Promise((r) => setTimeout(r, 10)); // the file watcher is real; its debounce runs on the fake clock
      await clock.advance(1_500);
    }
  };
  fs.writeFileSync(file, 'partners:\n  - {name: globex, bundle: globex-ca.pem, match: [{cn: a}]}\n  - {name: initech, bundle: initech-ca.pem, match: [{dns: x.initech.example}]}\n');
  await settle(() => source.current() !== first);
  const second = source.current();
  t.deepEqual(second.partners.map((p) => p.name), ['globex', 'initech']);
  t.is(swaps, 1);
  t.true(second.rootsPem.includes(INITECH_CA.pem.split('\n')[1]!));

  const logged = (re: RegExp) => () => lines().some((l) => l.level === 'error' && /keeping the last good mapping/.test(String(l.msg)) && re.test(String(l.err)));
  // A bundle the mapping names is watched too: one that no longer parses is refused.
  fs.writeFileSync(path.join(dir, 'initech-ca.pem'), 'not a certificate');
  await settle(logged(/partners\[1\] \(initech\)\.bundle: .*initech-ca\.pem/));
  t.true(logged(/initech-ca\.pem/)(), JSON.stringify(lines().filter((l) => l.component === 'partner-cas')));
  t.is(source.current(), second, 'the last good mapping stays');
  fs.writeFileSync(path.join(dir, 'initech-ca.pem'), INITECH_CA.pem);
  // A mapping edit that does not validate: refused, the error names the entry and field.
  fs.writeFileSync(file, 'partners:\n  - {name: globex, bundle: globex-ca.pem, match: [{cnn: a}]}\n');
  await settle(logged(/match\[0\]\.cnn: unknown field/));
  t.true(logged(/match\[0\]\.cnn: unknown field/)());
  t.is(source.current(), second, 'the last good mapping stays');
  t.true(reloads.includes('rejected'));
  t.is(swaps, 1);
});

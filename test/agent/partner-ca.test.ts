/**
 * An external partner CA mapped by subject CN, with real processes and a PKI nobody here wrote:
 * a partner CA and its client certificates made by `openssl`, a real `meshid ca`, and a real
 * `meshid agent --partner-cas`. Envoy's Check calls carry the openssl certificate in
 * attributes.source.certificate (URL-encoded PEM, as include_peer_certificate sends it); SDS
 * serves the `partners` validation context; the decision log and /metrics name the certificate.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { authzClient, checkRequest, metadataOf } from '../authz/helpers/authz-client.js';
import { policyDoc } from '../authz/helpers/policies.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { makeRoot } from '../helpers/pki.js';
import { SdsClient } from '../helpers/sds-client.js';
import { tempDir } from '../helpers/tmp.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { eventually, ordersCaProcess, TD } from './stand.js';

function openssl(args: string[], cwd: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', cwd, timeout: 20_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A CA made by openssl: a self-signed P-256 root, and `openssl ca` to sign client certificates with chosen dates. */
function opensslCa(dir: string, name: string, subject: string): { issue(cn: string, dates?: { start: string; end: string }): string; pem: string } {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'req.cnf'), '[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\n[dn]\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n');
  openssl(['req', '-x509', '-config', 'req.cnf', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', subject, '-days', '30'], d);
  fs.writeFileSync(path.join(d, 'index.txt'), '');
  fs.writeFileSync(path.join(d, 'serial'), '1000\n');
  fs.writeFileSync(
    path.join(d, 'ca.cnf'),
    [
      '[ca]', 'default_ca = partner', '[partner]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial', 'default_md = sha256', 'default_days = 7',
      'policy = any', 'unique_subject = no', 'x509_extensions = client', 'copy_extensions = none',
      '[any]', 'organizationName = optional', 'commonName = supplied',
      '[client]', 'basicConstraints = CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth', 'authorityKeyIdentifier = keyid', '',
    ].join('\n'),
  );
  let n = 0;
  return {
    pem: fs.readFileSync(path.join(d, 'ca.pem'), 'utf8'),
    issue(cn, dates) {
      const base = `client-${++n}`;
      openssl(['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', `${base}.key`], d);
      openssl(['req', '-new', '-config', 'req.cnf', '-key', `${base}.key`, '-subj', `/O=Globex/CN=${cn}`, '-out', `${base}.csr`], d);
      const when = dates ? ['-startdate', dates.start, '-enddate', dates.end] : [];
      openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${base}.csr`, '-out', `${base}.pem`, '-notext', ...when], d);
      return fs.readFileSync(path.join(d, `${base}.pem`), 'utf8');
    },
  };
}

function opensslFacts(dir: string, pem: string): { serial: string; sha256: string; notAfter: number } {
  const f = path.join(dir, `facts-${process.hrtime.bigint()}.pem`);
  fs.writeFileSync(f, pem);
  const out = openssl(['x509', '-in', f, '-noout', '-serial', '-fingerprint', '-sha256', '-enddate'], dir);
  return {
    serial: /serial=([0-9A-F]+)/.exec(out)![1]!.toLowerCase(),
    sha256: /Fingerprint=([0-9A-F:]+)/.exec(out)![1]!.replace(/:/g, '').toLowerCase(),
    notAfter: Date.parse(/notAfter=(.+)/.exec(out)![1]!),
  };
}

test('external partner CA mapped by CN works the same way: openssl certificates through a real agent', async (t) => {
  const dir = tempDir(t);
  const globex = opensslCa(dir, 'globex', '/O=Globex/CN=Globex Root CA');
  const stranger = opensslCa(dir, 'stranger', '/O=Stranger/CN=Stranger Root CA');
  const good = globex.issue('api-client.globex.example');
  const intern = globex.issue('intern');
  const expired = globex.issue('api-client.globex.example', { start: '20240101000000Z', end: '20240201000000Z' });
  const unknown = stranger.issue('api-client.globex.example');

  const { agentCaArgs, policyDir } = await ordersCaProcess(t, dir, 'policies');
  fs.writeFileSync(
    path.join(policyDir, '50-allow-globex.yaml'),
    policyDoc({ name: 'allow-globex', action: 'ALLOW', rules: [{ from: [{ source: { principals: [`${TD}/partner/globex`] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/partner/*'] } }] }] }),
  );
  const mapping = path.join(dir, 'partners.yaml');
  fs.writeFileSync(mapping, 'partners:\n  - name: globex\n    bundle: globex/ca.pem\n    match:\n      - cn: api-client.globex.example\n');
  const sdsSocket = path.join(dir, 'run', 'sds.sock');
  const authzSocket = path.join(dir, 'run', 'authz.sock');
  const agent = new MeshidProcess(['agent', ...agentCaArgs, `--sds-socket=${sdsSocket}`, `--authz-socket=${authzSocket}`, `--policy-dir=${policyDir}`, `--partner-cas=${mapping}`, '--admin-listen=127.0.0.1:0']);
  t.teardown(() => agent.stop());
  const started = await agent.waitFor('agent started', (l) => l.msg === `agent started (pid ${agent.pid})`);
  t.truthy(agent.lines.find((l) => l.msg === 'partner CA mapping loaded' && JSON.stringify(l.partners) === '["globex"]'));

  const client = authzClient(`unix:${authzSocket}`);
  t.teardown(() => client.close());
  // Envoy's principal for a certificate without a URI SAN is its subject.
  const ask = async (pem: string, p = '/api/partner/orders') =>
    metadataOf(await client.check(checkRequest({ principal: 'CN=api-client.globex.example,O=Globex', certificate: encodeURIComponent(pem), path: p })));
  t.like(await ask(good), { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-globex' });
  t.like(await ask(good, '/admin/users'), { decision: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-admin' });
  t.like(await ask(intern), { decision: 'deny', reason: 'peer_certificate_unmapped' });
  t.like(await ask(unknown), { decision: 'deny', reason: 'peer_certificate_invalid' });
  t.like(await ask(expired), { decision: 'deny', reason: 'peer_certificate_invalid' });

  // The decision lines name the certificate as openssl does.
  const facts = opensslFacts(dir, good);
  const decisionLines = () => agent.lines.filter((l) => l.component === 'authz-decision');
  // The decision log is written asynchronously, in batches.
  await eventually(() => decisionLines().length >= 5, 10_000, 'five decision lines');
  const decisions = decisionLines();
  t.is(decisions.length, 5);
  t.like(decisions[0], { outcome: 'allow', peer_certificate: 'mapped', peer_certificate_id: `spiffe://${TD}/partner/globex`, peer_certificate_serial: facts.serial, peer_certificate_sha256: facts.sha256, partner: 'globex' });
  t.like(decisions[2], { reason: 'peer_certificate_unmapped', partner: 'globex', peer_certificate_serial: opensslFacts(dir, intern).serial });
  t.regex(String(decisions[3]!.peer_certificate_id), /issued by no trusted CA/);
  t.regex(String(decisions[4]!.peer_certificate_id), /expired at 2024-02-01T00:00:00Z/);

  // The expiry watch: the soonest not-after among the certificates globex presented.
  const metrics = await (await fetch(`${String(started.admin)}/metrics`)).text();
  const expiry = /meshid_partner_certificate_expiry_timestamp_seconds\{partner="globex"\} (\S+)/.exec(metrics);
  t.truthy(expiry, metrics.split('\n').filter((l) => l.includes('partner')).join('\n'));
  t.is(Number(expiry![1]), Date.parse('2024-02-01T00:00:00Z') / 1000, 'the expired certificate was presented: it is the soonest');
  t.regex(metrics, /meshid_svid_remaining_seconds \d+/);

  // SDS: the partners validation context holds the mesh bundle and the partner's CA.
  const sds = new SdsClient({ socketPath: sdsSocket, node: { id: 'router~10.0.0.9~gateway~shop.svc.cluster.local', cluster: 'gateway' } });
  t.teardown(() => sds.close());
  const served = parseCertificatesPem((await sds.fetch('partners')).secret.validationContext!.trustedCa, 'partners');
  const mesh = parseCertificatesPem(fs.readFileSync(path.join(dir, 'ca', 'bundle.pem'), 'utf8'), 'bundle');
  t.deepEqual(served.map((c) => c.subjectText), [...mesh.map((c) => c.subjectText), 'O=Globex,CN=Globex Root CA']);

  // Onboard the intern by editing the mapping: hot-reloaded, then the same certificate is allowed.
  fs.writeFileSync(mapping, 'partners:\n  - name: globex\n    bundle: globex/ca.pem\n    match:\n      - cn: api-client.globex.example\n      - cn: intern\n');
  const deadline = Date.now() + 10_000;
  while ((await ask(intern)).decision !== 'allow') {
    if (Date.now() > deadline) return t.fail('the mapping edit was not picked up');
    await new Promise((r) => setTimeout(r, 50));
  }
  await eventually(() => agent.lines.some((l) => l.msg === 'partner CA mapping reloaded'), 10_000, 'the reload to be logged');
  sds.close();
  client.close();
  agent.signal('SIGTERM');
  t.is((await agent.exited).code, 0, agent.stderr);
});

test('a --partner-cas file that does not validate stops the agent at start with exit 2 and names the entry and field', async (t) => {
  const dir = tempDir(t);
  // The mapping is read before the agent asks the CA for anything: no CA needs to run.
  fs.writeFileSync(path.join(dir, 'ca.pem'), makeRoot(TD).pem);
  fs.writeFileSync(path.join(dir, 'token'), 'unused');
  const agentCaArgs = ['--ca-address=127.0.0.1:9', `--ca-bundle=${path.join(dir, 'ca.pem')}`, `--token-file=${path.join(dir, 'token')}`, `--trust-domain=${TD}`, `--spiffe-id=spiffe://${TD}/ns/gw/sa/gateway`];
  const mapping = path.join(dir, 'partners.yaml');
  fs.writeFileSync(mapping, 'partners:\n  - name: globex\n    bundle: missing.pem\n    match: [{cn: x}]\n');
  const agent = new MeshidProcess(['agent', ...agentCaArgs, `--sds-socket=${path.join(dir, 'sds.sock')}`, `--partner-cas=${mapping}`, '--admin-listen=127.0.0.1:0']);
  t.teardown(() => agent.stop());
  const exit = await agent.exited;
  t.is(exit.code, 2, agent.stderr);
  t.regex(agent.stderr + JSON.stringify(agent.lines), /partners\.yaml: partners\[0\] \(globex\)\.bundle: cannot read .*missing\.pem: ENOENT/);
});

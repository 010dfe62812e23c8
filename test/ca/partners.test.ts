/**
 * Partner onboarding and offboarding through the real CLI and openssl: a partner key and CSR made
 * by openssl, signed by `meshid ca partner issue`, checked by `openssl verify -x509_strict`, then
 * revoked with `meshid ca revoke`; the CRL parses and verifies under openssl, and openssl's own
 * CRL check refuses the certificate. Every issuance, refusal and revocation is in the audit log.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseCrlPem } from '../../src/ca/crl.js';
import { Registry } from '../../src/ca/registry.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { tempDir } from '../helpers/tmp.js';
import { createRootCertificate } from '../../src/ca/ca-certificates.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { certificatePem } from '../../src/identity/pem.js';
import { runCli } from '../authz/helpers/cli.js';

const TD = 'partners.test';

/** The command line in this process, as the operator who runs it (USER goes into the CA's audit lines). */
const meshid = (args: readonly string[]) => runCli(args, { USER: 'operator-1' });

function openssl(args: string[], cwd: string) {
  return spawnSync('openssl', args, { encoding: 'utf8', cwd, timeout: 20_000 });
}

/** A CA state directory as `meshid ca` leaves it on first start (root key and certificate). */
function caState(dir: string): string {
  const state = path.join(dir, 'ca');
  fs.mkdirSync(state, { mode: 0o700 });
  const key = generateKeyPairSync('ec-p256');
  const root = createRootCertificate(TD, key, Date.now());
  fs.writeFileSync(path.join(state, 'root-key.pem'), privateKeyPkcs8Pem(key.privateKey), { mode: 0o600 });
  fs.writeFileSync(path.join(state, 'root-cert.pem'), certificatePem(root.der), { mode: 0o600 });
  return state;
}

function partnerCsr(dir: string, name: string, subj: string, keyArgs = ['ecparam', '-genkey', '-name', 'prime256v1'], extra: string[] = []): string {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const k = openssl([...keyArgs, '-out', key], dir);
  if (k.status !== 0) throw new Error(k.stderr);
  const r = openssl(['req', '-new', '-key', key, '-subj', subj, ...extra, '-out', csr], dir);
  if (r.status !== 0) throw new Error(r.stderr);
  return csr;
}

function auditLines(state: string): Array<Record<string, unknown>> {
  return fs.readFileSync(path.join(state, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('onboard a partner from an openssl CSR, offboard it by revocation; openssl accepts the certificate, then the CRL refuses it', async (t) => {
  const dir = tempDir(t);
  const state = caState(dir);
  const csr = partnerCsr(dir, 'acme', '/O=Acme/CN=acme-client');
  const out = path.join(dir, 'out');
  const common = ['--state-dir', state, '--trust-domain', TD];

  // Without --allow-subject the requested subject is refused (and audited), not dropped silently.
  const refused = await meshid(['ca', 'partner', 'issue', '--name', 'acme', '--csr', csr, '--out', out, ...common]);
  t.is(refused.code, 1, refused.stderr);
  t.regex(refused.stderr, /asks for the subject O=Acme,CN=acme-client; pass --allow-subject/);

  const issued = await meshid(['ca', 'partner', 'issue', '--name', 'acme', '--csr', csr, '--out', out, '--ttl', '30d', '--allow-subject', ...common]);
  t.is(issued.code, 0, issued.stderr);
  t.regex(issued.stdout, new RegExp(`issued spiffe://${TD.replace('.', '\\.')}/partner/acme \\(O=Acme,CN=acme-client\\)`));
  const certFile = path.join(out, 'acme.crt');
  const verify = openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', path.join(out, 'ca-bundle.pem'), certFile], dir);
  t.is(verify.status, 0, verify.stdout + verify.stderr);
  // Client only: openssl refuses it as a server certificate.
  t.not(openssl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', path.join(out, 'ca-bundle.pem'), certFile], dir).status, 0);
  const [cert] = parseCertificatesPem(fs.readFileSync(certFile, 'utf8'), 'acme.crt');
  t.deepEqual(cert!.sans, [{ type: 'uri', value: `spiffe://${TD}/partner/acme` }]);
  t.is(cert!.subjectText, 'O=Acme,CN=acme-client');
  t.deepEqual(cert!.extKeyUsage, ['1.3.6.1.5.5.7.3.2']);
  t.false(cert!.basicConstraints?.ca ?? true);
  t.true(Math.abs(cert!.notAfter.getTime() - Date.now() - 30 * 86_400_000) < 120_000);
  t.is(fs.readFileSync(path.join(out, 'acme-chain.pem'), 'utf8'), fs.readFileSync(certFile, 'utf8'), 'a root CA: the chain is the certificate alone');

  const list = await meshid(['ca', 'partner', 'list', '--json', ...common]);
  t.is(list.code, 0, list.stderr);
  const [row] = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { serial: string; revoked: string | null; spiffeId: string });
  t.is(row!.serial, cert!.serial);
  t.is(row!.revoked, null);
  t.is((await meshid(['ca', 'partner', 'list', '--json', '--expiring', '29d', ...common])).stdout, '', 'expires in 30d: not within 29d');
  t.regex((await meshid(['ca', 'partner', 'list', '--json', '--expiring', '31d', ...common])).stdout, new RegExp(cert!.serial));

  const revoked = await meshid(['ca', 'revoke', '--id', `spiffe://${TD}/partner/acme`, '--reason', 'affiliationChanged', ...common]);
  t.is(revoked.code, 0, revoked.stderr);
  const crlFile = path.join(state, 'crl.pem');
  const text = openssl(['crl', '-in', crlFile, '-noout', '-text'], dir);
  t.is(text.status, 0, text.stderr);
  t.regex(text.stdout, new RegExp(`Serial Number: ${cert!.serial.toUpperCase()}`));
  t.regex(text.stdout, /Affiliation Changed/);
  t.regex(text.stdout, /CRL Number: \n\s+1/);
  const crlVerify = openssl(['crl', '-in', crlFile, '-noout', '-verify', '-CAfile', path.join(state, 'bundle.pem')], dir);
  t.is(crlVerify.status, 0, crlVerify.stderr);
  t.regex(crlVerify.stderr + crlVerify.stdout, /verify OK/);
  fs.writeFileSync(path.join(dir, 'with-crl.pem'), fs.readFileSync(crlFile, 'utf8') + fs.readFileSync(path.join(state, 'bundle.pem'), 'utf8'));
  const crlCheck = openssl(['verify', '-x509_strict', '-crl_check', '-CAfile', path.join(dir, 'with-crl.pem'), certFile], dir);
  t.not(crlCheck.status, 0);
  t.regex(crlCheck.stdout + crlCheck.stderr, /certificate revoked/);

  // Our own parser reads what we wrote, and the revocation is durable in the registry.
  const parsed = parseCrlPem(fs.readFileSync(crlFile, 'utf8'), 'crl.pem');
  t.true(parsed.revoked.has(cert!.serial));
  t.true(parsed.verifySignedBy(parseCertificatesPem(fs.readFileSync(path.join(state, 'bundle.pem'), 'utf8'), 'bundle')[0]!.publicKey()));
  t.is(Registry.load(state).revokedSerial(cert!.serial)?.reason, 'affiliationChanged');
  t.regex((await meshid(['ca', 'partner', 'list', ...common])).stdout, /acme\s+spiffe:\S+\s+\S+\s+\d{4}-\d\d-\d\dT/);

  // A second revocation of the same serial changes nothing but the CRL number.
  const again = await meshid(['ca', 'revoke', '--serial', cert!.serial.replace(/(..)(?!$)/g, '$1:').toUpperCase(), ...common]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /already revoked/);
  t.is(parseCrlPem(fs.readFileSync(crlFile, 'utf8'), 'crl.pem').crlNumber, 2);

  const audit = auditLines(state);
  t.deepEqual(audit.map((a) => a.event), ['refuse', 'issue', 'revoke', 'crl', 'crl']);
  for (const a of audit) t.is(a.who, `operator-1@${(spawnSync('hostname', { encoding: 'utf8' }).stdout || '').trim() || a.who?.toString().split('@')[1]}`);
  t.like(audit[1], { identity: `spiffe://${TD}/partner/acme`, partner: 'acme', serial: cert!.serial, notAfter: cert!.notAfter.toISOString() });
  t.like(audit[2], { event: 'revoke', serial: cert!.serial, reason: 'affiliationChanged', partner: 'acme' });
});

test('the CA\'s usual limits hold for partners: no CA, no weak key, no extra names, a valid name; each refusal is audited', async (t) => {
  const dir = tempDir(t);
  const state = caState(dir);
  const common = ['--state-dir', state, '--trust-domain', TD, '--out', path.join(dir, 'out')];
  const cases: Array<[string, string, RegExp]> = [
    [partnerCsr(dir, 'ca', '/CN=x', undefined, ['-addext', 'basicConstraints=critical,CA:TRUE']), 'ca-ask', /asks for a CA certificate/],
    [partnerCsr(dir, 'weak', '/CN=x', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']), 'weak', /RSA-1024 is too weak/],
    [partnerCsr(dir, 'dns', '/CN=x', undefined, ['-addext', 'subjectAltName=DNS:evil.example']), 'dns', /DNS subject alternative names/],
    [partnerCsr(dir, 'ou', '/OU=ops/CN=x'), 'ou', /attribute 2\.5\.4\.11/],
  ];
  for (const [csr, name, message] of cases) {
    const r = await meshid(['ca', 'partner', 'issue', '--name', name, '--csr', csr, '--allow-subject', ...common]);
    // Permission refusals exit 1; a key the CA does not sign is bad input, exit 2.
    t.is(r.code, name === 'weak' ? 2 : 1, `${name}: ${r.stderr}`);
    t.regex(r.stderr, message, name);
  }
  const badName = await meshid(['ca', 'partner', 'issue', '--name', 'Acme/../x', '--csr', cases[0]![0], ...common]);
  t.is(badName.code, 2);
  t.regex(badName.stderr, /partner name "Acme\/\.\.\/x" must be/);
  t.deepEqual(auditLines(state).map((a) => [a.event, a.partner]), cases.map(([, n]) => ['refuse', n]));
  t.deepEqual(Registry.load(state).data.issued, []);
  // No CA yet: the offline command does not create one.
  const empty = await meshid(['ca', 'partner', 'issue', '--name', 'acme', '--csr', cases[0]![0], '--state-dir', path.join(dir, 'nothing')]);
  t.is(empty.code, 1);
  t.regex(empty.stderr, /no CA key/);
  t.false(fs.existsSync(path.join(dir, 'nothing', 'root-key.pem')));
});

test('a torn write never loses the registry: a leftover temporary file is ignored, a corrupt registry is refused with its name', async (t) => {
  const dir = tempDir(t);
  const state = caState(dir);
  const csr = partnerCsr(dir, 'acme', '/CN=acme');
  const common = ['--state-dir', state, '--trust-domain', TD, '--out', dir];
  t.is((await meshid(['ca', 'partner', 'issue', '--name', 'acme', '--csr', csr, '--allow-subject', ...common])).code, 0);
  // What a crash between write and rename leaves behind.
  fs.writeFileSync(path.join(state, 'registry.json.999.1.tmp'), '{"version":1,"iss');
  t.is((await meshid(['ca', 'revoke', '--id', `spiffe://${TD}/partner/acme`, ...common.slice(0, 4)])).code, 0);
  t.is(Registry.load(state).data.revoked.length, 1);
  fs.writeFileSync(path.join(state, 'registry.json'), '{"version":1,"iss');
  const r = await meshid(['ca', 'revoke', '--serial', '01', ...common.slice(0, 4)]);
  t.is(r.code, 1);
  t.regex(r.stderr, /registry\.json is not JSON/);
});

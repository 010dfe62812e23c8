/**
 * Issue 9's whole partner story with real processes and tools nobody here wrote: a partner key
 * and CSR made by openssl, signed by `meshid ca partner issue`, verified by `openssl verify
 * -x509_strict`, used by `openssl s_client` against a node:tls gateway whose certificate and
 * validation context (with the CRL) come from `meshid agent` over SDS, each request checked
 * through the agent's ext_authz: allowed. Then `meshid ca revoke` against the running CA's state
 * directory: denied by ext_authz (reason revoked) on the connection already open, and refused at
 * the handshake once the CRL has arrived over SDS. An expired partner certificate and one from an
 * unknown CA are refused at the handshake. Every outcome is in the trail: the CA's audit.log, the
 * agent's decision log, the gateway's connection log.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { parseCrlPem } from '../../src/ca/crl.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { decodeDer } from '../../src/identity/der.js';
import { makeLeaf, makeRoot, type Issued } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { Gateway, meshidOk, PartnerConnection, startGatewayStack, TD } from './gateway.js';

const PARTNER = `spiffe://${TD}/partner/acme`;
const POLICIES = {
  'allow-acme.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-acme, namespace: edge }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/partner/acme"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }]
`,
};

function openssl(args: string[], cwd: string) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', cwd, timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The CA's own root, from its state directory, as the test PKI helpers take an issuer. */
function caIssuer(stateDir: string): Issued {
  const pem = fs.readFileSync(path.join(stateDir, 'root-cert.pem'), 'utf8');
  const cert = parseCertificatesPem(pem, 'root')[0]!;
  const privateKey = crypto.createPrivateKey(fs.readFileSync(path.join(stateDir, 'root-key.pem')));
  return { cert, der: cert.der, pem, key: { algorithm: 'ec-p256', privateKey, publicKey: crypto.createPublicKey(privateKey) }, name: decodeDer(cert.subject, 'root subject') };
}

function writeKeyAndCert(dir: string, name: string, issued: Issued): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(cert, issued.pem);
  fs.writeFileSync(key, issued.key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { cert, key };
}

test('a partner onboarded by openssl CSR and offboarded by meshid ca revoke: allowed, then denied on its open connection and refused at the handshake; expired and unknown-CA certificates refused; all in the trail', async (t) => {
  const dir = tempDir(t, 'meshid-partner-e2e-');
  const stack = await startGatewayStack(dir, POLICIES);
  t.teardown(() => stack.stop());
  const gateway = new Gateway(stack);
  t.teardown(() => gateway.close());
  await gateway.listen();

  // Onboarding: the partner's key and CSR by openssl, signed by the offline command.
  const out = path.join(dir, 'acme');
  t.is(openssl(['ecparam', '-genkey', '-name', 'prime256v1', '-out', 'acme.key'], dir).status, 0);
  t.is(openssl(['req', '-new', '-key', 'acme.key', '-subj', '/O=Acme/CN=acme-client', '-out', 'acme.csr'], dir).status, 0);
  await meshidOk(['ca', 'partner', 'issue', '--name', 'acme', '--csr', path.join(dir, 'acme.csr'), '--allow-subject', '--out', out, ...stack.state]);
  const verified = openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', path.join(out, 'ca-bundle.pem'), path.join(out, 'acme.crt')], dir);
  t.is(verified.status, 0, verified.out);
  const serial = parseCertificatesPem(fs.readFileSync(path.join(out, 'acme.crt'), 'utf8'), 'acme.crt')[0]!.serial;
  const acme = { cert: path.join(out, 'acme-chain.pem'), key: path.join(dir, 'acme.key'), caFile: path.join(out, 'ca-bundle.pem') };

  // 1. Allowed: a connection that stays open, and its first request.
  const open = new PartnerConnection(gateway.port, acme);
  t.teardown(() => open.close());
  const firstAnswer = await open.get('/api/orders');
  t.like(firstAnswer, { status: 200 }, open.stderr);
  t.like(await open.get('/admin'), { status: 403 }, 'policy still applies to the partner');

  // 2. Offboarding, against the running CA's state directory.
  const rootsBefore = gateway.rootsVersion();
  await meshidOk(['ca', 'revoke', '--id', PARTNER, '--reason', 'cessationOfOperation', ...stack.state]);
  await stack.agent.waitFor('the CRL with the revocation', (l) => l.event === 'crl_updated' && Number(l.revoked) >= 1, { timeoutMs: 10_000 });
  // ...denied by ext_authz on the connection already open (its handshake predates the CRL)...
  const denied = await open.get('/api/orders');
  t.like(denied, { status: 403 });
  t.regex(denied === 'closed' ? '' : denied.body, /revoked/);
  // ...and refused at the handshake once the CRL reached the gateway over SDS.
  await gateway.until(() => gateway.rootsVersion() !== rootsBefore, 10_000, 'the ROOTCA push with the CRL');
  t.true(parseCrlPem(gateway.crlPem()!, 'ROOTCA crl').revoked.has(serial), 'the pushed validation context lists the serial');
  const again = new PartnerConnection(gateway.port, acme);
  t.teardown(() => again.close());
  t.is(await again.get('/api/orders'), 'closed');

  // 3. An expired partner certificate (signed by the CA's own key, but a month old) and 4. one from an unknown CA.
  const expired = writeKeyAndCert(dir, 'expired', makeLeaf(caIssuer(stack.stateDir), `spiffe://${TD}/partner/old`, { notBefore: new Date(Date.now() - 40 * 86_400_000), notAfter: new Date(Date.now() - 10 * 86_400_000) }));
  const rogue = writeKeyAndCert(dir, 'rogue', makeLeaf(makeRoot(TD, { commonName: 'not the gateway CA' }), PARTNER));
  for (const c of [expired, rogue]) {
    const conn = new PartnerConnection(gateway.port, { ...c, caFile: acme.caFile });
    t.teardown(() => conn.close());
    t.is(await conn.get('/api/orders'), 'closed');
  }

  // The trail. The CA: issuance and revocation, with who, what identity, serial, validity.
  const audit = fs.readFileSync(path.join(stack.stateDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(audit.find((a) => a.event === 'issue'), { identity: PARTNER, partner: 'acme', serial, who: `operator-1@${os.hostname()}` });
  t.like(audit.find((a) => a.event === 'revoke'), { identity: PARTNER, serial, reason: 'cessationOfOperation' });
  // The agent's decision log (written asynchronously): the allowed request, the policy deny, the revoked one, with the certificate's serial.
  await stack.agent.waitFor('the decision line of the revoked request', (l) => l.component === 'authz-decision' && l.reason === 'revoked', { timeoutMs: 10_000 });
  const decisions = stack.agent.lines.filter((l) => l.component === 'authz-decision');
  t.deepEqual(
    decisions.map((l) => [l.outcome, l.reason, l.peer_certificate_serial]),
    [
      ['allow', 'allow_policy_matched', serial],
      ['deny', 'no_allow_policy_matched', serial],
      ['deny', 'revoked', serial],
    ],
  );
  // The gateway's connection log: the three handshakes refused, each with OpenSSL's reason.
  t.deepEqual(
    gateway.log.filter((l) => l.event === 'handshake_refused').map((l) => l.error),
    ['CERT_REVOKED', 'CERT_HAS_EXPIRED', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  );
});

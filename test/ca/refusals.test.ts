/** Every CSR the CA refuses, over a real gRPC connection: the status and a message naming the problem. */
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { status } from '@grpc/grpc-js';
import { createCsr, parseCsr } from '../../src/identity/csr.js';
import { checkCsrRequest } from '../../src/ca/policy.js';
import { generateKeyPairSync, type KeyPair } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { makeRoot } from '../helpers/pki.js';
import { tempDir } from '../helpers/tmp.js';
import { BACKEND, craftCsr, csrFor, FRONTEND, STATIC_TOKEN, startHarness } from './harness.js';

const token = { kind: 'token' as const, token: STATIC_TOKEN };

function ecKey(curve: string): KeyPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: curve });
  return { algorithm: 'ec-p256', publicKey, privateKey };
}

function rsaKey(bits: number): KeyPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  return { algorithm: 'rsa-2048', publicKey, privateKey };
}

function ed25519Csr(dir: string): string {
  const key = path.join(dir, 'ed.pem');
  fs.writeFileSync(key, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const r = spawnSync('openssl', ['req', '-new', '-key', key, '-subj', '/', '-addext', `subjectAltName=critical,URI:${FRONTEND}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

test('CSRs the CA refuses, each with its status and a message naming the problem', async (t) => {
  const h = await startHarness(t, {});
  const other = generateKeyPairSync();
  const cases: Array<[string, string, number, RegExp]> = [
    ['not PEM', 'hello', status.INVALID_ARGUMENT, /the CSR is not PEM/],
    ['empty', '', status.INVALID_ARGUMENT, /the CSR is not PEM/],
    ['a certificate instead of a CSR', makeRoot('example.org').pem, status.INVALID_ARGUMENT, /expected a CERTIFICATE REQUEST, found a PEM "CERTIFICATE"/],
    ['garbage in CSR armour', '-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n', status.INVALID_ARGUMENT, /not a PKCS#10 CSR/],
    ['signature by another key', craftCsr({ sans: [{ type: 'uri', value: FRONTEND }], signWith: other.privateKey }).pem, status.INVALID_ARGUMENT, /the CSR signature does not verify/],
    ['another identity', csrFor(BACKEND).pem, status.PERMISSION_DENIED, /asks for "spiffe:\/\/example.org\/ns\/shop\/sa\/backend" but the caller authenticated as spiffe:\/\/example.org\/ns\/shop\/sa\/frontend/],
    ['two URI SANs', craftCsr({ sans: [{ type: 'uri', value: FRONTEND }, { type: 'uri', value: BACKEND }] }).pem, status.INVALID_ARGUMENT, /asks for 2 URI SANs/],
    ['a DNS SAN', craftCsr({ sans: [{ type: 'uri', value: FRONTEND }, { type: 'dns', value: 'frontend.shop.svc' }] }).pem, status.PERMISSION_DENIED, /asks for DNS subject alternative names/],
    ['an IP SAN', craftCsr({ sans: [{ type: 'ip', value: '10.0.0.1' }] }).pem, status.PERMISSION_DENIED, /asks for IP subject alternative names/],
    ['an email SAN', craftCsr({ sans: [{ type: 'email', value: 'a@example.org' }] }).pem, status.PERMISSION_DENIED, /asks for EMAIL subject alternative names/],
    ['a CA certificate', craftCsr({ sans: [{ type: 'uri', value: FRONTEND }], ca: true }).pem, status.PERMISSION_DENIED, /asks for a CA certificate \(basicConstraints cA=true\)/],
    ['RSA-1024', createCsr(parseSpiffeId(FRONTEND), rsaKey(1024)).pem, status.INVALID_ARGUMENT, /RSA-1024 is too weak: RSA keys need at least 2048 bits/],
    ['EC P-521', createCsr(parseSpiffeId(FRONTEND), ecKey('P-521')).pem, status.INVALID_ARGUMENT, /CSR key EC secp521r1 is not supported/],
    ['Ed25519', ed25519Csr(tempDir(t)), status.INVALID_ARGUMENT, /CSR key type ed25519 is not supported/],
  ];
  for (const [name, csr, code, message] of cases) {
    const r = await h.client.createCertificate(csr, token);
    t.like(r, { ok: false, grpcCode: code }, name);
    if (!r.ok) t.regex(r.message, message, name);
  }
  const refused = h.logs.filter((l) => l.event === 'certificate_refused');
  t.is(refused.length, cases.length, 'each refusal is logged');
  t.true(refused.every((l) => l.identity === FRONTEND && typeof l.reason === 'string' && l.auth === 'static-token'));
  t.deepEqual(
    refused.map((l) => l.reason),
    ['csr_not_pem', 'csr_not_pem', 'csr_wrong_type', 'csr_malformed', 'csr_signature_invalid', 'csr_identity_mismatch', 'csr_multiple_uris', 'csr_unprovable_sans', 'csr_unprovable_sans', 'csr_unprovable_sans', 'csr_requests_ca', 'csr_key_too_weak', 'csr_key_unsupported', 'csr_key_unsupported'],
  );
});

test('CSR issuance refuses an identity that is the bare trust domain (static tokens already refuse to map one)', (t) => {
  const bare = parseSpiffeId('spiffe://example.org');
  const csr = parseCsr(createCsr(bare, generateKeyPairSync()).pem);
  const e = t.throws(() => checkCsrRequest(csr, bare));
  t.is((e as { code?: string }).code, 'csr_identity_no_path');
  t.notThrows(() => checkCsrRequest(parseCsr(csrFor(FRONTEND).pem), parseSpiffeId(FRONTEND)));
});

test('a 70 KB bearer token is answered with UNAUTHENTICATED naming the size limit, not left without an answer', async (t) => {
  const h = await startHarness(t, {});
  const r = await h.client.createCertificate(csrFor(FRONTEND).pem, { kind: 'token', token: 'x'.repeat(70_000) });
  t.like(r, { ok: false, grpcCode: status.UNAUTHENTICATED });
  if (!r.ok) t.regex(r.message, /over the 64 KiB limit/);
});

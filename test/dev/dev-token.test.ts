/**
 * `meshid dev token --sa NS/SA`: the printed token gets an SVID from a real `meshid ca` process
 * started with the flags the README gives (--jwt-keys <state>/token-issuer/jwks.json --jwt-issuer
 * meshid-dev), for a real `meshid agent` process that derives its identity from the token; a token
 * from another issuer key, or of another audience, is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { CaClient } from '../../src/ca/client.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { runCli } from '../authz/helpers/cli.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { tempDir } from '../helpers/tmp.js';

const TD = 'example.org';

async function devToken(args: readonly string[]): Promise<{ status: number; out: string; err: string }> {
  const r = await runCli(['dev', 'token', ...args]);
  return { status: r.code, out: r.stdout, err: r.stderr };
}

test('the token looks like a projected service-account token, stdout holds only it, and the key is made once (0600)', async (t) => {
  const state = path.join(tempDir(t), 'state');
  const first = await devToken(['--sa', 'shop/orders', '--state-dir', state]);
  t.is(first.status, 0, first.err);
  t.regex(first.out, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'one JWT and a newline on stdout');
  t.regex(first.err, /--jwt-keys .*token-issuer\/jwks\.json --jwt-issuer meshid-dev/, 'first use says how to start the CA');
  const claims = decodeJwt(first.out.trim());
  t.is(claims.sub, 'system:serviceaccount:shop:orders');
  t.is(claims.iss, 'meshid-dev');
  t.is(claims.aud, 'istio-ca');
  t.deepEqual((claims['kubernetes.io'] as { namespace: string }).namespace, 'shop');
  t.is(claims.exp! - claims.iat!, 3600);
  t.is(fs.statSync(path.join(state, 'token-issuer', 'key.pem')).mode & 0o777, 0o600);

  const second = await devToken(['--sa', 'shop/frontend', '--state-dir', state, '--aud', 'istio-ca,other', '--ttl', '10m']);
  t.is(second.status, 0, second.err);
  t.is(second.err, '', 'the key exists: nothing on stderr');
  t.is(decodeProtectedHeader(second.out.trim()).kid, decodeProtectedHeader(first.out.trim()).kid, 'the same key signs both');
  t.deepEqual(decodeJwt(second.out.trim()).aud, ['istio-ca', 'other']);
  t.is(decodeJwt(second.out.trim()).exp! - decodeJwt(second.out.trim()).iat!, 600);
  const jwks = JSON.parse(fs.readFileSync(path.join(state, 'token-issuer', 'jwks.json'), 'utf8')) as { keys: Array<Record<string, unknown>> };
  t.is(jwks.keys.length, 1);
  t.false('d' in jwks.keys[0]!, 'the JWKS holds the public key only');
});

test('bad --sa values are refused with exit 2 and nothing on stdout', async (t) => {
  const state = path.join(tempDir(t), 'state');
  for (const sa of ['orders', 'shop/orders/x', 'shop/', 'sh op/orders']) {
    const r = await devToken(['--sa', sa, '--state-dir', state]);
    t.is(r.status, 2, sa);
    t.is(r.out, '', sa);
    t.regex(r.err, /--sa/, sa);
  }
});

test('meshid ca --jwt-keys <state>/token-issuer/jwks.json --jwt-issuer meshid-dev issues the SVID a meshid agent asks for with the token', async (t) => {
  const dir = tempDir(t);
  const state = path.join(dir, '.meshid');
  const orders = await devToken(['--sa', 'shop/orders', '--state-dir', state]);
  const otherAudience = await devToken(['--sa', 'shop/orders', '--state-dir', state, '--aud', 'somewhere-else']);
  const foreign = await devToken(['--sa', 'shop/orders', '--state-dir', path.join(dir, 'other')]);
  const tokenFile = path.join(dir, 'orders.token');
  fs.writeFileSync(tokenFile, orders.out);

  const ca = new MeshidProcess([
    'ca', '--listen=127.0.0.1:0', `--trust-domain=${TD}`, `--state-dir=${path.join(state, 'ca')}`,
    '--jwt-keys', path.join(state, 'token-issuer', 'jwks.json'), '--jwt-issuer', 'meshid-dev',
  ]);
  t.teardown(() => ca.stop());
  const listening = await ca.waitFor('CA listening', (l) => l.event === 'listening');
  const agent = new MeshidProcess([
    'agent', `--ca-address=${String(listening.address)}`, `--ca-bundle=${String(listening.bundle)}`, `--token-file=${tokenFile}`,
    `--trust-domain=${TD}`, `--sds-socket=${path.join(dir, 'sds.sock')}`, '--admin-listen=127.0.0.1:0',
  ]);
  t.teardown(() => agent.stop());
  const issued = await agent.waitFor('the SVID issued', (l) => l.msg === 'SVID issued');
  t.is(issued.spiffeId, `spiffe://${TD}/ns/shop/sa/orders`, 'the identity comes from the token (no --spiffe-id)');
  const atCa = await ca.waitFor('certificate_issued', (l) => l.event === 'certificate_issued');
  t.is(atCa.auth, 'jwt');

  const client = new CaClient({ address: String(listening.address), caBundlePem: fs.readFileSync(String(listening.bundle), 'utf8') });
  t.teardown(() => client.close());
  const csr = createCsr(parseSpiffeId(`spiffe://${TD}/ns/shop/sa/orders`), generateKeyPairSync('ec-p256')).pem;
  const wrongAud = await client.createCertificate(csr, { kind: 'token', token: otherAudience.out.trim() });
  t.false(wrongAud.ok);
  t.regex(wrongAud.ok ? '' : wrongAud.message, /audience/);
  const wrongKey = await client.createCertificate(csr, { kind: 'token', token: foreign.out.trim() });
  t.false(wrongKey.ok);
  t.regex(wrongKey.ok ? '' : wrongKey.message, /key|signature/);
});

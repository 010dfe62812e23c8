/**
 * Revocation through a running CA and agent (in-process, fake clock): the offline `meshid ca
 * revoke` records it, the running CA picks it up from its state directory, the agent's long poll
 * brings the CRL, SDS pushes it inside the validation context, ext_authz denies the revoked peer
 * with reason revoked (by certificate serial, and by identity when only the principal is known),
 * re-onboarding lifts the identity's revocation, and revoking the agent's own SVID renews it at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import test from 'ava';
import { parseCrlPem } from '../../src/ca/crl.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { authzClient, checkRequest, metadataOf } from '../authz/helpers/authz-client.js';
import { Stand, TD } from './stand.js';
import { runCli } from '../authz/helpers/cli.js';

const PARTNER = `spiffe://${TD}/partner/acme`;
const PARTNER_POLICY = {
  'allow-acme.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-acme, namespace: gateway }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/partner/acme"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }]
`,
};

/** The command line in this process, as the operator who runs it (USER goes into the CA's audit lines). */
const meshid = (args: readonly string[]) => runCli(args, { USER: 'operator-1' });

/** Moves the fake clock in small steps (the CA's file-watch debounce runs on it) until cond holds. */
async function until(s: Stand, cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (cond()) return;
    await s.clock.advance(10);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('meshid ca revoke reaches a running agent: the CRL over SDS, ext_authz denies the revoked partner (revoked), re-onboarding lifts it, a revoked own SVID renews at once', async (t) => {
  const s = await Stand.start(t, { crl: true, policies: PARTNER_POLICY });
  const svid1 = await s.agent.manager.firstSvid();
  const crls = s.agent.crls!;
  await until(s, () => crls.current() !== undefined, 'the first CRL');
  const stateDir = path.join(s.dir, 'ca');
  const state = ['--state-dir', stateDir, '--trust-domain', TD];

  const envoy = s.sdsClient();
  const rootca = envoy.subscribe('ROOTCA');
  const first = await rootca.waitFor((x) => x.secret.validationContext?.crl !== undefined);
  t.is(parseCrlPem(first.secret.validationContext!.crl!, 'ROOTCA crl').crlNumber, crls.current()!.crlNumber);

  // Onboarding: the partner's CSR, signed by the offline command.
  const issue = async () => {
    const csrFile = path.join(s.dir, 'acme.csr');
    fs.writeFileSync(csrFile, createCsr(parseSpiffeId(PARTNER), generateKeyPairSync('ec-p256')).pem);
    const r = await meshid(['ca', 'partner', 'issue', '--name', 'acme', '--csr', csrFile, '--out', s.dir, ...state]);
    t.is(r.code, 0, r.stderr);
    return fs.readFileSync(path.join(s.dir, 'acme.crt'), 'utf8');
  };
  const cert1 = await issue();
  const client = authzClient(`unix:${s.agent.authz!.socketPath!}`);
  t.teardown(() => client.close());
  const ask = (o: { certificate?: string }) => client.check(checkRequest({ principal: PARTNER, path: '/api/orders', ...o }));
  t.like(metadataOf(await ask({ certificate: encodeURIComponent(cert1) })), { decision: 'allow' });
  t.like(metadataOf(await ask({})), { decision: 'allow' });

  // Offboarding: revoked by identity; the running CA and the agent follow.
  const before = crls.current()!.crlNumber;
  t.is((await meshid(['ca', 'revoke', '--id', PARTNER, '--reason', 'cessationOfOperation', ...state])).code, 0);
  await until(s, () => crls.current()!.crlNumber > before, 'the CRL with the revocation');
  const denied = await ask({ certificate: encodeURIComponent(cert1) });
  t.is(denied.status?.code, grpcStatus.PERMISSION_DENIED);
  t.is(denied.denied_response?.status?.code, 'Forbidden');
  t.like(metadataOf(denied), { decision: 'deny', reason: 'revoked' });
  t.like(metadataOf(await ask({})), { decision: 'deny', reason: 'revoked' }, 'the principal alone is enough');
  const pushed = await rootca.waitFor((x) => x.version !== first.version);
  const listed = parseCrlPem(pushed.secret.validationContext!.crl!, 'ROOTCA crl');
  t.true([...listed.revoked.keys()].length >= 1);
  t.is(listed.crlNumber, crls.current()!.crlNumber, 'SDS pushed the new CRL to the open stream');
  t.is(pushed.secret.validationContext!.trustedCa.trim(), first.secret.validationContext!.trustedCa.trim(), 'same roots');

  // Onboarded again: a new certificate; the identity is no longer revoked, the old certificate still is.
  const revokedNumber = crls.current()!.crlNumber;
  const cert2 = await issue();
  await until(s, () => crls.current()!.crlNumber > revokedNumber, 'the CRL after re-issuance');
  t.like(metadataOf(await ask({ certificate: encodeURIComponent(cert2) })), { decision: 'allow' });
  t.like(metadataOf(await ask({})), { decision: 'allow' });
  t.like(metadataOf(await ask({ certificate: encodeURIComponent(cert1) })), { decision: 'deny', reason: 'revoked' });

  // The agent's own SVID revoked: renewed now (by token: the revoked SVID no longer authenticates), long before its renewal time.
  const renewAt = s.status().nextAttemptAt!;
  const ownNumber = crls.current()!.crlNumber;
  t.is((await meshid(['ca', 'revoke', '--serial', svid1.version, ...state])).code, 0);
  await until(s, () => crls.current()!.crlNumber > ownNumber && s.servedVersion() !== svid1.version && !s.status().requestInFlight, 'the renewal after revocation');
  t.true(s.clock.now() < renewAt, 'renewed before the scheduled renewal');
  t.truthy(s.agentLogs().find((l) => /the SVID we hold is revoked/.test(String(l.msg))));
  t.like(s.agentLogs().filter((l) => l.msg === 'SVID renewed').at(-1), { previousSerial: svid1.version, auth: 'token' });

  const decisions = s.agentLogs().filter((l) => l.component === 'authz-decision');
  t.deepEqual(
    decisions.map((l) => [l.outcome, l.reason]),
    [
      ['allow', 'allow_policy_matched'],
      ['allow', 'allow_policy_matched'],
      ['deny', 'revoked'],
      ['deny', 'revoked'],
      ['allow', 'allow_policy_matched'],
      ['allow', 'allow_policy_matched'],
      ['deny', 'revoked'],
    ],
  );
});

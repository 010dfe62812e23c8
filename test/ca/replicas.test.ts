/**
 * CA replicas: three `meshid ca` processes' worth of startCa() on one machine, sharing one state
 * directory (read-only after the first start, as from a Kubernetes Secret). Each issues under the
 * same root with its own random serials; an agent addressed at all three renews against another
 * replica when the one it used dies.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { CaClient } from '../../src/ca/client.js';
import { type RunningCa, startCa } from '../../src/ca/server.js';
import { verifyX509Svid } from '../../src/identity/svid-verify.js';
import { captureLogs } from '../helpers/logs.js';
import { csrFor, FRONTEND, leafOf, mtlsAuth, STATIC_TOKEN, startHarness } from './harness.js';

test('three replicas share the state read-only: one root, distinct serials, and an agent renews against another replica when its replica dies', async (t) => {
  const h = await startHarness(t);
  // After the first start the state is what an operator puts in the Secret: read-only files.
  for (const f of fs.readdirSync(h.stateDir)) fs.chmodSync(path.join(h.stateDir, f), 0o400);
  const before = Object.fromEntries(fs.readdirSync(h.stateDir).map((f) => [f, fs.readFileSync(path.join(h.stateDir, f), 'utf8')]));
  const replicas: Array<{ ca: RunningCa; logs: ReturnType<typeof captureLogs>['lines'] }> = [{ ca: h.ca, logs: h.logs as never }];
  for (let i = 0; i < 2; i++) {
    const { logger, lines } = captureLogs();
    const ca = await startCa(h.config, { logger });
    t.teardown(() => ca.close());
    replicas.push({ ca, logs: lines });
  }
  t.deepEqual(new Set(replicas.map((r) => r.ca.bundlePem)).size, 1, 'one trust bundle');
  t.deepEqual(Object.fromEntries(fs.readdirSync(h.stateDir).map((f) => [f, fs.readFileSync(path.join(h.stateDir, f), 'utf8')])), before, 'no replica rewrote the shared state');

  const target = `ipv4:${replicas.map((r) => `127.0.0.1:${r.ca.port}`).join(',')}`;
  const client = new CaClient({ address: target, caBundlePem: h.ca.bundlePem, serverName: 'localhost', deadlineMs: 5000 });
  t.teardown(() => client.close());
  const issuedBy = () => replicas.findIndex((r) => r.logs.filter((l) => l['event'] === 'certificate_issued').length > counts[replicas.indexOf(r)]!);
  let counts = replicas.map((r) => r.logs.filter((l) => l['event'] === 'certificate_issued').length);

  const csr = csrFor(FRONTEND);
  const first = await client.createCertificate(csr.pem, { kind: 'token', token: STATIC_TOKEN });
  if (!first.ok) return t.fail(first.message);
  const firstReplica = issuedBy();
  t.true(firstReplica >= 0);

  await replicas[firstReplica]!.ca.close();
  counts = replicas.map((r) => r.logs.filter((l) => l['event'] === 'certificate_issued').length);
  const next = csrFor(FRONTEND);
  let renewed = await client.createCertificate(next.pem, mtlsAuth(first.chainPem, csr.key));
  let failures = 0;
  while (!renewed.ok && failures < 3) {
    failures++;
    renewed = await client.createCertificate(next.pem, mtlsAuth(first.chainPem, csr.key));
  }
  if (!renewed.ok) return t.fail(renewed.message);
  t.true(failures <= 1, `at most the call that found the dead replica fails (${failures})`);
  const secondReplica = issuedBy();
  t.true(secondReplica >= 0 && secondReplica !== firstReplica, `renewed by replica ${secondReplica}, not the dead ${firstReplica}`);
  const a = leafOf(first.chainPem);
  const b = leafOf(renewed.chainPem);
  t.not(a.serial, b.serial);
  const root = leafOf([h.ca.bundlePem]);
  t.is(verifyX509Svid([b], [root], { trustDomain: 'example.org', now: Date.now() }).spiffeId.uri, FRONTEND);
});

/**
 * Fault matrix (issue 12), CA faults, with real `meshid agent` (and `meshid ca`) processes on the
 * real clock. Renewals are forced with SIGUSR1 instead of waited for; the CA's one-minute SVIDs
 * never come near expiry within a test.
 */
import path from 'node:path';
import test from 'ava';
import { FRONTEND, ORDERS, ORDERS_TOKEN, TD } from '../agent/stand.js';
import { startFaultAgent, untilReady } from './support.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { startRogueCa } from '../helpers/rogue-ca.js';
import { tempDir } from '../helpers/tmp.js';
import fs from 'node:fs';

const RETRYING = 'could not obtain an SVID from the CA; will retry';

test('a CA answering with a chain for the wrong identity, an expired chain, then a chain from another root: each refused, the old SVID kept and served', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  const agent = await startFaultAgent(t, dir, { caAddress: ca.address, caBundle: ca.bundlePath, args: [`--trust-bundle=${ca.bundlePath}`] });
  await untilReady(agent.admin);
  const served = async () => (await agent.sds().fetch('default')).version;
  const first = await served();
  t.truthy(first);
  const rootVersion = (await agent.sds().fetch('ROOTCA')).version;

  ca.mode = 'wrong-identity';
  let from = agent.process.lines.length;
  agent.process.signal('SIGUSR1');
  const wrong = await agent.process.waitFor('a refusal of the wrong identity', (l) => l.msg === RETRYING && l.code === 'ca_wrong_identity', { from });
  t.regex(String(wrong.error), new RegExp(`the CA issued ${FRONTEND}; we asked for ${ORDERS}`));
  t.is(await served(), first, 'the old SVID is still served');
  t.is((await fetch(`${agent.admin}/readyz`)).status, 200, 'and the agent stays ready');

  ca.mode = 'expired';
  from = agent.process.lines.length;
  // The next retry (backoff, under 2 s) gets the expired chain.
  const expired = await agent.process.waitFor('a refusal of the expired chain', (l) => l.msg === RETRYING && l.code === 'ca_chain_untrusted', { from });
  t.regex(String(expired.error), /not a valid X\.509-SVID: .*expired/i);
  t.is(await served(), first, 'the old SVID is still served');

  ca.mode = 'other-root';
  from = agent.process.lines.length;
  const foreign = await agent.process.waitFor('a refusal of the chain from another root', (l) => l.msg === RETRYING && l.code === 'ca_root_not_configured', { from });
  t.regex(String(foreign.error), /ends at root ".*", which is not in the configured trust bundle \(1 root\(s\)\)/);
  t.is(await served(), first, 'the old SVID is still served');
  t.is((await agent.sds().fetch('ROOTCA')).version, rootVersion, 'and the other root is not trusted');

  ca.mode = 'ok';
  from = agent.process.lines.length;
  const renewed = await agent.process.waitFor('the renewal once the CA behaves', (l) => l.msg === 'SVID renewed', { from });
  t.is(renewed.previousSerial, first);
  t.not(await served(), first, 'a good answer is taken');
  t.true(ca.answered.includes('wrong-identity') && ca.answered.includes('expired') && ca.answered.includes('other-root'));
});

test('CA down at agent start: the agent retries and becomes ready when the CA comes up; CA down past a renewal: the old SVID kept and served', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const tokens = path.join(dir, 'tokens.yaml');
  fs.writeFileSync(tokens, `tokens:\n  ${ORDERS_TOKEN}: ${ORDERS}\n`);
  const caArgs = (listen: string) => ['ca', `--listen=${listen}`, `--trust-domain=${TD}`, `--state-dir=${path.join(dir, 'ca')}`, `--static-tokens=${tokens}`];
  // Once, to create the CA's state (its root, bundle.pem) and learn a port; then it is down.
  const once = new MeshidProcess(caArgs('127.0.0.1:0'));
  t.teardown(() => once.stop());
  const listening = await once.waitFor('CA listening', (l) => l.event === 'listening');
  const address = String(listening.address);
  once.signal('SIGTERM');
  await once.exited;

  const agent = await startFaultAgent(t, dir, { caAddress: address, caBundle: String(listening.bundle) });
  await agent.process.waitFor('a failed first attempt', (l) => l.msg === RETRYING && l.serving === false);
  t.is((await fetch(`${agent.admin}/readyz`)).status, 503, 'not ready without an SVID');

  const ca = new MeshidProcess(caArgs(address));
  t.teardown(() => ca.stop());
  await ca.waitFor('CA listening again', (l) => l.event === 'listening');
  await untilReady(agent.admin, 15_000);
  const first = (await agent.sds().fetch('default')).version;

  ca.signal('SIGTERM');
  await ca.exited;
  const from = agent.process.lines.length;
  agent.process.signal('SIGUSR1');
  const failed = await agent.process.waitFor('a failed renewal', (l) => l.msg === RETRYING, { from });
  t.truthy(failed.servingUntil, 'the failure says until when the old SVID is served');
  t.is((await agent.sds().fetch('default')).version, first, 'the old SVID is still served');
  t.is((await fetch(`${agent.admin}/readyz`)).status, 200);
});

test('a CA slower than the deadline, then a CA that flaps: each failed attempt keeps the old SVID served, and a good answer is taken', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  const agent = await startFaultAgent(t, dir, { caAddress: ca.address, caBundle: ca.bundlePath, args: ['--ca-timeout=1s'] });
  await untilReady(agent.admin);
  const served = async () => (await agent.sds().fetch('default')).version;
  const first = await served();

  ca.mode = 'slow';
  let from = agent.process.lines.length;
  agent.process.signal('SIGUSR1');
  const late = await agent.process.waitFor('the attempt given up at the deadline', (l) => l.msg === RETRYING && l.grpcCode === 4, { from });
  t.truthy(late.error);
  t.is(await served(), first, 'the old SVID is still served');
  t.is((await fetch(`${agent.admin}/readyz`)).status, 200, 'and the agent stays ready');

  // Flapping: unavailable, then fine, twice over; the agent renews each time the CA is back.
  let current = first;
  for (let round = 0; round < 2; round++) {
    ca.mode = 'unavailable';
    from = agent.process.lines.length;
    if (round > 0) agent.process.signal('SIGUSR1');
    await agent.process.waitFor(`round ${round}: UNAVAILABLE retried`, (l) => l.msg === RETRYING && l.grpcCode === 14, { from });
    t.is(await served(), current, `round ${round}: the SVID in force is still served`);
    ca.mode = 'ok';
    from = agent.process.lines.length;
    const renewed = await agent.process.waitFor(`round ${round}: renewed once the CA is back`, (l) => l.msg === 'SVID renewed', { from });
    t.is(renewed.previousSerial, current);
    current = await served();
    t.not(current, renewed.previousSerial);
  }
  t.true(ca.answered.includes('slow') && ca.answered.filter((m) => m === 'unavailable').length >= 2);
});

/**
 * Fault matrix (issue 12), file systems, with real agent processes: a full disk under the file
 * sink (a real 64 KiB tmpfs, filled up) and the policy directory on a read-only mount (a tmpfs
 * remounted read-only). Mounting needs CAP_SYS_ADMIN; where the test runner lacks it these tests
 * say so and are skipped (t.log), since an fs shim would test the shim rather than the kernel.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FRONTEND, ORDERS, SHOP_POLICIES, TD } from '../agent/stand.js';
import { authzClient, checkRequest, metadataOf } from '../authz/helpers/authz-client.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { startRogueCa } from '../helpers/rogue-ca.js';
import { tempDir } from '../helpers/tmp.js';
import { startFaultAgent, untilReady } from './support.js';

/** Mounts a tmpfs of `size` at dir (unmounted at teardown); false when this runner cannot mount. */
function mountTmpfs(t: ExecutionContext, dir: string, size: string): boolean {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    t.log(`skipped: cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()})`);
    return false;
  }
  t.teardown(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  });
  return true;
}

const serialOf = (pem: string) => parseCertificatesPem(pem, 'svid.pem')[0]!.serial;

test('disk full under the file sink: the old key and certificate stay whole and matching, SDS serves the new SVID, the files follow once space is freed', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const svidDir = path.join(dir, 'svid');
  if (!mountTmpfs(t, svidDir, '64k')) return t.pass();
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  const agent = await startFaultAgent(t, dir, { caAddress: ca.address, caBundle: ca.bundlePath, args: [`--svid-dir=${svidDir}`] });
  await agent.process.waitFor('the SVID files', (l) => l.msg === 'SVID files written');
  const read = (name: string) => fs.readFileSync(path.join(svidDir, name), 'utf8');
  const before = { pem: read('svid.pem'), key: read('svid.key') };

  // Fill the file system: the filler's write stops at ENOSPC with no block left.
  const filler = path.join(svidDir, 'filler');
  t.throws(() => fs.writeFileSync(filler, Buffer.alloc(1024 * 1024)), { code: 'ENOSPC' });
  t.is(fs.statfsSync(svidDir).bavail, 0);

  let from = agent.process.lines.length;
  agent.process.signal('SIGUSR1');
  const failed = await agent.process.waitFor('the failed write', (l) => l.msg === 'cannot write the SVID files; will retry', { from });
  t.regex(String(failed.err), /ENOSPC/);
  const served = (await agent.sds().fetch('default')).version;
  t.not(served, serialOf(before.pem), 'SDS serves the new SVID');
  t.deepEqual({ pem: read('svid.pem'), key: read('svid.key') }, before, 'the old pair is left whole');
  t.deepEqual(fs.readdirSync(svidDir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left behind');

  from = agent.process.lines.length;
  fs.rmSync(filler);
  await agent.process.waitFor('the write once space is freed', (l) => l.msg === 'SVID files written', { from });
  t.is(serialOf(read('svid.pem')), served, 'the files now hold the SVID SDS serves');
  t.not(read('svid.key'), before.key);
});

test('policy directory on a read-only mount: loaded and enforced (the agent writes nothing there)', async (t) => {
  const dir = tempDir(t, 'meshid-fault-');
  const policyDir = path.join(dir, 'policies');
  if (!mountTmpfs(t, policyDir, '1m')) return t.pass();
  for (const [name, yaml] of Object.entries(SHOP_POLICIES)) fs.writeFileSync(path.join(policyDir, name), yaml);
  execFileSync('mount', ['-o', 'remount,ro', policyDir], { stdio: 'pipe' });
  t.throws(() => fs.writeFileSync(path.join(policyDir, 'x.yaml'), ''), { code: 'EROFS' });
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  const socket = path.join(dir, 'run', 'authz.sock');
  const agent = await startFaultAgent(t, dir, { caAddress: ca.address, caBundle: ca.bundlePath, args: [`--authz-socket=${socket}`, `--policy-dir=${policyDir}`] });
  await untilReady(agent.admin);
  const client = authzClient(`unix:${socket}`);
  t.teardown(() => client.close());
  t.like(metadataOf(await client.check(checkRequest({ principal: FRONTEND, method: 'GET', path: '/api/orders' }))), { decision: 'allow', policy: 'shop/allow-frontend' });
  t.like(metadataOf(await client.check(checkRequest({ principal: FRONTEND, method: 'GET', path: '/admin' }))), { decision: 'deny', policy: 'shop/deny-admin' });
});

/**
 * Fault matrix (issue 12), file systems, with real agent processes: a full disk under the file
 * sink (a real 64 KiB tmpfs, filled up), the policy directory on a read-only mount (a tmpfs
 * remounted read-only), and a policy directory the agent (run as nobody) may not read. Mounting
 * needs CAP_SYS_ADMIN and running as nobody needs root; where the test runner lacks them these
 * tests say so and are skipped (t.log), since an fs shim would test the shim, not the kernel.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FRONTEND, ORDERS, ORDERS_TOKEN, SHOP_POLICIES, TD } from '../agent/stand.js';
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

const NOBODY = { uid: 65534, gid: 65534 };

/** Whether `nobody` can list dir (the probe that the permission fault is real, not assumed). */
function nobodyCanList(dir: string): boolean {
  try {
    execFileSync('ls', [dir], { stdio: 'pipe', ...NOBODY });
    return true;
  } catch {
    return false;
  }
}

test('policy directory the agent may not read: denied and not ready at start; while running the last good set stays in force; applied once readable', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('skipped: the agent runs as nobody, which needs a root test runner');
    return t.pass();
  }
  const dir = tempDir(t, 'meshid-fault-');
  fs.chmodSync(dir, 0o755);
  const policyDir = path.join(dir, 'policies');
  fs.mkdirSync(policyDir, { mode: 0o700 });
  for (const [name, yaml] of Object.entries(SHOP_POLICIES)) fs.writeFileSync(path.join(policyDir, name), yaml, { mode: 0o644 });
  t.false(nobodyCanList(policyDir), 'nobody cannot list a root-owned 0700 directory');
  const ca = await startRogueCa({ dir, trustDomain: TD, identity: ORDERS, otherIdentity: FRONTEND });
  t.teardown(() => ca.close());
  // The agent's own files belong to nobody; the CA's bundle is copied where nobody may read it.
  const start = async (name: string, resync: string) => {
    const agentDir = path.join(dir, name);
    fs.mkdirSync(agentDir);
    const caBundle = path.join(agentDir, 'ca-bundle.pem');
    fs.copyFileSync(ca.bundlePath, caBundle);
    const socket = path.join(agentDir, 'run', 'authz.sock');
    const args = [`--authz-socket=${socket}`, `--policy-dir=${policyDir}`, `--policy-resync=${resync}`];
    const tokenFile = path.join(agentDir, 'orders.token');
    fs.writeFileSync(tokenFile, `${ORDERS_TOKEN}\n`);
    execFileSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, agentDir]);
    const agent = await startFaultAgent(t, agentDir, { caAddress: ca.address, caBundle, args, user: NOBODY });
    const client = authzClient(`unix:${socket}`);
    t.teardown(() => client.close());
    return { agent, client };
  };
  const ask = async (client: ReturnType<typeof authzClient>, p: string) => metadataOf(await client.check(checkRequest({ principal: FRONTEND, method: 'GET', path: p })));

  // At start: the error names the directory, the agent is not ready, and every check is denied.
  const first = await start('agent-1', '0');
  const unreadable = await first.agent.process.waitFor('the unreadable directory', (l) => l.code === 'policy_dir_unreadable');
  t.is(unreadable.file, policyDir);
  t.regex(String(unreadable.msg), /cannot be read: EACCES/);
  // Everything else comes up: only the policies keep the agent from being ready.
  const checks = async () => {
    const r = await fetch(`${first.agent.admin}/readyz`);
    return { status: r.status, ...((await r.json()) as { checks: Record<string, boolean> }) };
  };
  let readyz = await checks();
  for (const until = Date.now() + 10_000; !readyz.checks.svid && Date.now() < until; readyz = await checks()) await new Promise((r) => setTimeout(r, 25));
  t.like(readyz, { status: 503, checks: { svid: true, sds: true, authz_policies: false } });
  t.like(await ask(first.client, '/api/orders'), { decision: 'deny' });

  // Readable at start, unreadable while running: rejected, the last good set stays in force.
  fs.chmodSync(policyDir, 0o755);
  t.true(nobodyCanList(policyDir));
  const second = await start('agent-2', '1s');
  await untilReady(second.agent.admin);
  t.like(await ask(second.client, '/api/orders'), { decision: 'allow', policy: 'shop/allow-frontend' });
  const loaded = second.agent.process.lines.find((l) => l.msg === 'policy set loaded')!;
  let from = second.agent.process.lines.length;
  fs.chmodSync(policyDir, 0o700);
  const kept = await second.agent.process.waitFor('the rejected change', (l) => l.kept_revision !== undefined, { from });
  t.is(kept.msg, `policy change rejected; revision ${String(loaded.revision)} stays in force`);
  t.truthy(second.agent.process.lines.slice(from).find((l) => l.code === 'policy_dir_unreadable' && l.file === policyDir));
  t.like(await ask(second.client, '/api/orders'), { decision: 'allow', policy: 'shop/allow-frontend' });
  t.is((await fetch(`${second.agent.admin}/readyz`)).status, 200, 'a last good set keeps the agent ready');

  // Readable again, with a new DENY: applied.
  from = second.agent.process.lines.length;
  fs.writeFileSync(
    path.join(policyDir, '05-deny-orders.yaml'),
    `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-orders, namespace: shop }\nspec:\n  action: DENY\n  rules:\n    - to: [{ operation: { paths: ["/api/orders"] } }]\n`,
    { mode: 0o644 },
  );
  fs.chmodSync(policyDir, 0o755);
  await second.agent.process.waitFor('the new set', (l) => l.msg === 'policy set loaded', { from });
  t.like(await ask(second.client, '/api/orders'), { decision: 'deny', policy: 'shop/deny-orders' });
});

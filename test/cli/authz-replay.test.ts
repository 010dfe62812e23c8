import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { readDecisionLine } from '../../src/authz/replay.js';
import { authzClient, checkRequest } from '../authz/helpers/authz-client.js';
import { runCli } from '../authz/helpers/cli.js';
import { FRONTEND, ordersCaProcess, SHOP_POLICIES, TD } from '../agent/stand.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { tempDir } from '../helpers/tmp.js';

const OTHER = `spiffe://${TD}/ns/shop/sa/payments`;

test('replay: decisions recorded by a running agent, a policy edited, the changes reported by policy with counts and exit 1', async (t) => {
  const dir = tempDir(t, 'meshid-replay-');
  const { agentCaArgs, policyDir: current } = await ordersCaProcess(t, dir, 'current');
  const authzSocket = path.join(dir, 'authz.sock');
  const agent = new MeshidProcess([
    'agent',
    ...agentCaArgs,
    `--sds-socket=${path.join(dir, 'sds.sock')}`,
    `--authz-socket=${authzSocket}`,
    `--policy-dir=${current}`,
    '--authz-decision-log-headers=x-tenant',
  ]);
  t.teardown(() => agent.stop());
  await agent.waitFor('policies loaded', (l) => l.component === 'authz' && /ext_authz serving/.test(String(l.msg)));
  const client = authzClient(`unix:${authzSocket}`);
  t.teardown(() => client.close());
  const requests = [
    checkRequest({ principal: FRONTEND, path: '/api/orders' }),
    checkRequest({ principal: FRONTEND, path: '/api/orders/7?token=abc' }),
    checkRequest({ principal: FRONTEND, path: '/admin' }),
    checkRequest({ principal: OTHER, path: '/api/orders' }),
    checkRequest({ principal: FRONTEND, path: '/api/orders', headers: { 'x-tenant': 'initech' } }),
    checkRequest({ principal: FRONTEND, path: '/api/orders', headers: { 'x-user': 'mallory' } }),
  ];
  const statuses = [];
  for (const r of requests) statuses.push((await client.check(r)).status?.code ?? 0);
  t.deepEqual(statuses, [0, 0, 7, 7, 0, 0], 'allowed, allowed, denied by deny-admin, denied (no ALLOW matched), allowed, allowed');
  await agent.waitFor('six decision lines', () => agent.lines.filter((l) => l.component === 'authz-decision').length === 6);
  agent.signal('SIGTERM');
  await agent.exited;
  // The agent's stdout as written: decision lines among the others.
  const log = path.join(dir, 'agent.log');
  fs.writeFileSync(log, `${agent.lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  t.false(fs.readFileSync(log, 'utf8').includes('mallory'), 'a header not named is logged hashed');

  const same = await runCli(['authz', 'replay', `--policy-dir=${current}`, `--decisions=${log}`]);
  t.is(same.code, 0, same.stdout + same.stderr);
  t.regex(same.stdout, /^6 decisions replayed against [0-9a-f]{12}: 0 changed, 6 unchanged, 0 undecidable/m);

  const candidate = path.join(dir, 'candidate');
  fs.cpSync(current, candidate, { recursive: true });
  // The edit: /api/orders/* no longer allowed; tenant initech and user mallory denied.
  fs.writeFileSync(path.join(candidate, '20-allow-frontend.yaml'), SHOP_POLICIES['20-allow-frontend.yaml']!.replace('["/api/orders", "/api/orders/*"]', '["/api/orders"]'));
  fs.writeFileSync(path.join(candidate, '05-deny-tenants.yaml'), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-tenants, namespace: shop }
spec:
  action: DENY
  rules:
    - when: [{ key: "request.headers[x-tenant]", values: ["initech"] }]
    - when: [{ key: "request.headers[x-user]", values: ["mallory"] }]
`);
  const changed = await runCli(['authz', 'replay', `--policy-dir=${candidate}`, `--decisions=${log}`]);
  t.is(changed.code, 1, changed.stdout + changed.stderr);
  const out = changed.stdout;
  t.regex(out, /^shop\/allow-frontend: 1 request change\n  \S+ GET orders\.shop\.svc\.cluster\.local\/api\/orders\/7 from spiffe:\/\/example\.org\/ns\/shop\/sa\/frontend: allow \(shop\/allow-frontend rule 0\) -> deny \(no_allow_policy_matched\)$/m);
  t.regex(out, /^shop\/deny-tenants: 1 request change\n  .*: allow \(shop\/allow-frontend rule 0\) -> deny \(shop\/deny-tenants rule 0\)$/m);
  t.regex(out, /^undecidable: 1 request\n  .*: a policy matches on header x-user, logged hashed/m);
  t.regex(out, /6 decisions replayed against [0-9a-f]{12}: 2 changed, 3 unchanged, 1 undecidable/);
  t.false(out.includes('token=abc'));

  const againstCurrent = await runCli(['authz', 'replay', `--policy-dir=${candidate}`, `--current-policy-dir=${candidate}`, `--decisions=${log}`]);
  t.is(againstCurrent.code, 0, againstCurrent.stdout);
  t.regex(againstCurrent.stdout, /0 changed, 5 unchanged, 1 undecidable/);
});

test('replay: bad input exits 2 naming the file and line', async (t) => {
  const dir = tempDir(t, 'meshid-replay-bad-');
  const pol = path.join(dir, 'p');
  fs.mkdirSync(pol);
  fs.writeFileSync(path.join(pol, 'a.yaml'), SHOP_POLICIES['10-deny-admin.yaml']!);
  const bad = path.join(dir, 'bad.log');
  fs.writeFileSync(bad, '{"level":30,"msg":"x"}\nnot json\n');
  let r = await runCli(['authz', 'replay', `--policy-dir=${pol}`, `--decisions=${bad}`]);
  t.is(r.code, 2);
  t.regex(r.stderr, /bad\.log:2: is not a JSON log line/);
  fs.writeFileSync(bad, '{"decision_id":"d","outcome":"allow","path":"/a"}\n');
  r = await runCli(['authz', 'replay', `--policy-dir=${pol}`, `--decisions=${bad}`]);
  t.is(r.code, 2);
  t.regex(r.stderr, /log format 1, which does not record/);
  r = await runCli(['authz', 'replay', `--policy-dir=${pol}`, `--decisions=${path.join(dir, 'missing.log')}`]);
  t.is(r.code, 2);
  t.regex(r.stderr, /cannot read .*missing\.log: ENOENT/);
  r = await runCli(['authz', 'replay', `--policy-dir=${path.join(dir, 'nope')}`, `--decisions=${bad}`]);
  t.is(r.code, 2);
});

test('replay: a cut value is undecidable; a rate-limited line counts as allowed by its policy', (t) => {
  const line = readDecisionLine(JSON.stringify({ log_format: 2, decision_id: 'd', outcome: 'deny', reason: 'rate_limited', policy: 'shop/a', rule: 0, path_received: '/x…[truncated 9 bytes]', truncated: 'path_received,path' }));
  t.is(line.kind, 'decision');
  if (line.kind !== 'decision') return;
  t.deepEqual(line.decision.decided, { outcome: 'allow', reason: 'allow_policy_matched', policy: 'shop/a', rule: 0 });
  t.deepEqual(line.decision.truncated, ['path_received', 'path']);
});

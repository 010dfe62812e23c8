import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { tempDir } from '../helpers/tmp.js';
import { fixture, runCli } from '../authz/helpers/cli.js';

test('a valid directory: exit 0, every policy listed with action, file and document, selector reported as not applied', async (t) => {
  const r = await runCli(['policy', 'lint', fixture('shop')]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /5 policies in 3 files, revision [0-9a-f]{12}/);
  t.regex(r.stdout, /shop\/deny-admin\s+DENY\s+1 rule; 10-deny\.yaml doc 1/);
  t.regex(r.stdout, /shop\/deny-plaintext\s+DENY\s+1 rule; 10-deny\.yaml doc 2/);
  t.regex(r.stdout, /shop\/allow-frontend\s+ALLOW\s+2 rules; 20-allow\.yml doc 1; selector app=orders \(not applied/);
  t.regex(r.stdout, /shop\/deny-unknown-tenants\s+DENY\s+1 rule; 30-audit-and-dry-run\.yaml doc 2; dry-run/);
  t.regex(r.stdout, /\nvalid\n$/);
  t.is(r.stderr, '');
});

test('an invalid directory: exit 1, every error with file, line, document, policy and field', async (t) => {
  const r = await runCli(['policy', 'lint', fixture('invalid')]);
  t.is(r.code, 1);
  const errors = r.stdout.split('\n').filter((l) => l.startsWith('error: '));
  t.deepEqual(errors, [
    'error: a.yaml:10 doc 1 (allow-frontend): spec.rules[0].from[0].source.principals[1]: empty value (Istio refuses empty strings)',
    'error: a.yaml:13 doc 1 (allow-frontend): spec.rules[0].to[0].operation.method: unknown field (did you mean methods?); expected hosts, notHosts, ports, notPorts, methods, notMethods, paths, notPaths',
    'error: b.yaml:7 doc 1 (ext): spec.action: CUSTOM delegates to an external authorizer; meshid is the external authorizer, so write ALLOW, DENY or AUDIT policies for it',
  ]);
  t.regex(r.stdout, /3 errors; the agent would not load this policy set/);
});

test('--json prints one object with policies, errors and warnings', async (t) => {
  const ok = await runCli(['policy', 'lint', '--json', fixture('shop')]);
  t.is(ok.code, 0);
  const v = JSON.parse(ok.stdout) as { valid: boolean; policies: Array<{ id: string; selector: unknown }>; errors: unknown[] };
  t.true(v.valid);
  t.deepEqual(v.policies.map((p) => p.id), ['shop/deny-admin', 'shop/deny-plaintext', 'shop/allow-frontend', 'shop/audit-writes', 'shop/deny-unknown-tenants']);
  t.deepEqual(v.policies[2]?.selector, { app: 'orders' });
  const bad = await runCli(['policy', 'lint', '--json', fixture('invalid')]);
  t.is(bad.code, 1);
  const b = JSON.parse(bad.stdout) as { valid: boolean; errors: Array<{ code: string; file: string; line: number }> };
  t.false(b.valid);
  t.deepEqual(b.errors.map((e) => [e.code, e.file, e.line]), [
    ['empty_value', 'a.yaml', 10],
    ['unknown_field', 'a.yaml', 13],
    ['custom_refused', 'b.yaml', 7],
  ]);
});

test('warnings (the plaintext trap, lower-case methods) do not fail the lint', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'p.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-not-bad}
spec:
  rules:
  - from:
    - source: {notNamespaces: ["bad"]}
    to:
    - operation: {methods: ["get"]}
`,
  );
  const r = await runCli(['policy', 'lint', dir]);
  t.is(r.code, 0);
  t.regex(r.stdout, /warning: p\.yaml:\d+ doc 1 \(allow-not-bad\): spec\.rules\[0\]\.from\[0\]\.source\.notNamespaces: also matches plaintext requests/);
  t.regex(r.stdout, /warning: .*operation\.methods\[0\]: methods compare case-sensitively/);
  t.regex(r.stdout, /valid \(2 warnings\)/);
});

test('an empty directory is valid but warns that everything is allowed', async (t) => {
  const r = await runCli(['policy', 'lint', tempDir(t)]);
  t.is(r.code, 0);
  t.regex(r.stdout, /no AuthorizationPolicy documents: every request is allowed/);
});

test('usage errors and unreadable directories exit 2', async (t) => {
  const none = await runCli(['policy', 'lint']);
  t.is(none.code, 2);
  t.regex(none.stderr, /expected exactly one directory/);
  const missing = await runCli(['policy', 'lint', path.join(tempDir(t), 'nope')]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /policy directory does not exist/);
  const flag = await runCli(['policy', 'lint', '--bogus', fixture('shop')]);
  t.is(flag.code, 2);
});

import test from 'ava';
import { runCli } from '../authz/helpers/cli.js';

// The shipped example requests and sample policies must agree: a new user's first try with
// `meshid authz check` is an allow, and the second shows a default deny that explains itself.

test('examples/requests: the allowed example is allowed by deploy/policies', async (t) => {
  const r = await runCli(['authz', 'check', '--policy-dir', 'deploy/policies', '--request', 'examples/requests/allowed-create-order.json']);
  t.is(r.code, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { decision: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-shop', rule: 0 });
});

test('examples/requests: the denied example is a default deny naming the nearest ALLOW rule and what failed', async (t) => {
  const r = await runCli(['authz', 'check', '--policy-dir', 'deploy/policies', '--request', 'examples/requests/denied-v1-orders.json']);
  t.is(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { decision: string; reason: string; policy: unknown; nearest: Array<{ text: string }> };
  t.like(d, { decision: 'deny', reason: 'no_allow_policy_matched', policy: null });
  t.is(d.nearest[0]?.text, 'shop/allow-shop rule 0: path /api/v1/orders is not /api/orders or /api/orders/*');
});

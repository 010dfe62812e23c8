/**
 * /metrics of a running agent, read as Prometheus reads it, after the agent has been through a CA
 * outage at start, a first SVID, a rotation, SDS clients that ACK and one that NACKs, ext_authz
 * decisions, and a valid and an invalid policy change.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { authzClient, checkRequest } from '../authz/helpers/authz-client.js';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { type MetricFamily, parsePrometheusText, samplesOf, valueOf } from './prometheus-text.js';
import { chainOf, eventually, FRONTEND, FRONTEND_TOKEN, SHOP_POLICIES, Stand, TD } from './stand.js';

const ALLOW_MONITORING = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-monitoring, namespace: shop }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { namespaces: ["monitoring"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/metrics"] } }]
`;
const TYPO = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: typo, namespace: shop }
spec:
  action: ALLOW
  rulez: []
`;

/** Sum of a counter family's samples that carry these labels (0 when none does). */
function total(m: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  return samplesOf(m, name, name, labels).reduce((a, s) => a + s.value, 0);
}

/** A histogram's series for these labels: buckets cumulative and ending in +Inf = count. */
function histogram(t: import('ava').ExecutionContext, m: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}) {
  t.is(m.get(name)?.type, 'histogram', name);
  const buckets = samplesOf(m, name, `${name}_bucket`, labels);
  const count = valueOf(m, name, labels, `${name}_count`);
  const sum = valueOf(m, name, labels, `${name}_sum`);
  t.true(buckets.length > 1, `${name}: buckets`);
  const les = buckets.map((b) => Number(b.labels.le === '+Inf' ? Infinity : b.labels.le));
  t.deepEqual(les, [...les].sort((a, b) => a - b), `${name}: buckets in order`);
  t.true(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), `${name}: cumulative`);
  t.is(buckets.at(-1)!.labels.le, '+Inf');
  t.is(buckets.at(-1)!.value, count);
  t.true(sum >= 0);
  return { count, sum };
}

test('/metrics after an outage, a rotation, SDS traffic, ext_authz decisions and policy reloads: every metric there with sane values', async (t) => {
  const s = await Stand.start(t, { caUp: false, renewFraction: 0.25, policies: SHOP_POLICIES });

  // A CA outage at start: one failed attempt, then the CA comes up and the retry gets the SVID (token).
  await s.settled();
  await s.startCa();
  t.true((await s.nextAttempt()).ok);

  // Envoy A subscribes to both secrets; Envoy B refuses every certificate (NACKs).
  const a = s.sdsClient();
  const aDefault = a.subscribe('default');
  const aRoots = a.subscribe('ROOTCA');
  const bDefault = s.sdsClient({ reject: () => 'test: this Envoy refuses every certificate' }).subscribe('default');
  await Promise.all([aDefault.waitFor(() => true), aRoots.waitFor(() => true), eventually(() => bDefault.nacks.length === 1)]);

  // A rotation, over mTLS.
  t.true((await s.nextAttempt()).ok);
  const served = await aDefault.waitFor((x) => x.version === s.servedVersion());
  await eventually(() => bDefault.nacks.length === 2, 5000, 'the second NACK');

  // ext_authz: allowed, denied by a policy, denied by default, and a certificate from another root.
  const frontend = await s.issueFor(FRONTEND_TOKEN, FRONTEND);
  const certificate = encodeURIComponent(frontend.chainPem[0]!);
  const authz = authzClient(`unix:${s.agent.authz!.socketPath!}`);
  t.teardown(() => authz.close());
  const ask = (o: Parameters<typeof checkRequest>[0]) => authz.check(checkRequest({ principal: FRONTEND, certificate, ...o }));
  await ask({ method: 'GET', path: '/api/orders' });
  await ask({ method: 'GET', path: '/api/orders/7' });
  await ask({ method: 'DELETE', path: '/admin/users' });
  await ask({ method: 'POST', path: '/api/orders' });
  await ask({ method: 'GET', path: '/api/orders', certificate: encodeURIComponent(makeLeaf(makeRoot(TD), FRONTEND).pem) });

  // A valid policy change, then an invalid one (rejected; the valid set stays in force).
  fs.writeFileSync(path.join(s.policyDir, '30-allow-monitoring.yaml'), ALLOW_MONITORING);
  t.like(await s.agent.authz!.policies.reload(), { status: 'loaded' });
  const revision = s.agent.authz!.revision();
  fs.writeFileSync(path.join(s.policyDir, '40-typo.yaml'), TYPO);
  t.like(await s.agent.authz!.policies.reload(), { status: 'rejected', kept: revision });

  // ACKs cross the socket after the client processed the response: wait for the server to count them.
  const acksSent = aDefault.accepted + aRoots.accepted;
  const acksCounted = async () => (await s.agent.metrics.sdsAcks.get()).values.reduce((sum, v) => sum + v.value, 0);
  await until(async () => (await acksCounted()) === acksSent, 'the ACKs to be counted');

  const m = parsePrometheusText(await s.metrics());
  const now = s.clock.now();

  // SVID: expiry matches the served leaf; time left is counted on the agent's clock.
  const leaf = chainOf(served.secret.tlsCertificate!.certificateChain)[0]!;
  t.is(valueOf(m, 'meshid_svid_expiry_timestamp_seconds'), leaf.notAfter.getTime() / 1000);
  t.true(leaf.notAfter.getTime() > now);
  t.is(valueOf(m, 'meshid_svid_remaining_seconds'), (leaf.notAfter.getTime() - now) / 1000);
  t.true(valueOf(m, 'meshid_svid_remaining_seconds') > 0);

  // Rotations by authentication, failures by kind.
  t.is(valueOf(m, 'meshid_svid_rotations_total', { auth: 'token' }), 1);
  t.is(valueOf(m, 'meshid_svid_rotations_total', { auth: 'mtls' }), 1);
  t.true(total(m, 'meshid_svid_rotations_total') >= 2);
  t.is(valueOf(m, 'meshid_svid_rotation_failures_total', { kind: 'unavailable' }), 1);

  // CA requests: latency by gRPC code, errors by code.
  t.is(histogram(t, m, 'meshid_ca_request_duration_seconds', { code: 'OK' }).count, 2);
  t.is(histogram(t, m, 'meshid_ca_request_duration_seconds', { code: 'UNAVAILABLE' }).count, 1);
  t.is(valueOf(m, 'meshid_ca_request_errors_total', { code: 'UNAVAILABLE' }), 1);
  t.is(samplesOf(m, 'meshid_ca_request_errors_total', 'meshid_ca_request_errors_total', { code: 'OK' }).length, 0);

  // SDS: open streams, responses by kind, ACKs and NACKs as the clients tallied them.
  t.is(valueOf(m, 'meshid_sds_streams'), 3);
  t.is(valueOf(m, 'meshid_sds_streams'), s.agent.sds.streams());
  t.is(valueOf(m, 'meshid_sds_responses_total', { kind: 'workload' }), aDefault.accepted + bDefault.nacks.length);
  t.is(valueOf(m, 'meshid_sds_responses_total', { kind: 'bundle' }), aRoots.accepted);
  t.is(total(m, 'meshid_sds_acks_total'), acksSent);
  t.is(valueOf(m, 'meshid_sds_acks_total', { kind: 'workload' }), 2);
  t.is(valueOf(m, 'meshid_sds_nacks_total', { kind: 'workload' }), 2);
  t.is(total(m, 'meshid_sds_nacks_total'), bDefault.nacks.length);
  t.true(histogram(t, m, 'meshid_sds_push_duration_seconds', { kind: 'workload' }).count >= 1);

  // ext_authz: decisions by outcome, reason and deciding policy; latency; peer certificates.
  t.is(valueOf(m, 'meshid_authz_decisions_total', { outcome: 'allow', reason: 'allow_policy_matched', policy: 'shop/allow-frontend' }), 2);
  t.is(valueOf(m, 'meshid_authz_decisions_total', { outcome: 'deny', reason: 'deny_policy_matched', policy: 'shop/deny-admin' }), 1);
  t.is(valueOf(m, 'meshid_authz_decisions_total', { outcome: 'deny', reason: 'no_allow_policy_matched', policy: '' }), 1);
  t.is(valueOf(m, 'meshid_authz_decisions_total', { outcome: 'deny', reason: 'peer_certificate_invalid', policy: '' }), 1);
  t.is(total(m, 'meshid_authz_decisions_total'), 5);
  const checks = histogram(t, m, 'meshid_authz_check_duration_seconds');
  t.is(checks.count, 5);
  t.true(checks.sum > 0 && checks.sum < 5, `${checks.sum} s for 5 checks`);
  t.is(valueOf(m, 'meshid_authz_peer_certificates_total', { status: 'verified' }), 4);
  t.is(valueOf(m, 'meshid_authz_peer_certificates_total', { status: 'invalid' }), 1);

  // Policy reloads: the first load and the valid change; the typo rejected; the revision in force.
  t.is(valueOf(m, 'meshid_authz_policy_reloads_total'), 2);
  t.is(valueOf(m, 'meshid_authz_policy_reload_errors_total'), 1);
  t.deepEqual(samplesOf(m, 'meshid_authz_policy_revision_info').map((x) => [x.labels, x.value]), [[{ revision }, 1]]);
  t.is(valueOf(m, 'meshid_authz_policies'), 3);

  // Process metrics from prom-client's defaults.
  t.true(valueOf(m, 'process_resident_memory_bytes') > 10 * 1024 * 1024);
  t.true(valueOf(m, 'process_cpu_user_seconds_total') > 0);
  t.true(valueOf(m, 'process_start_time_seconds') > 1_600_000_000);
  t.true(valueOf(m, 'nodejs_heap_size_used_bytes') > 0);
  t.is(m.get('nodejs_eventloop_lag_seconds')?.type, 'gauge');
});

test('every meshid_ metric follows Prometheus naming conventions', async (t) => {
  const s = await Stand.start(t, { policies: SHOP_POLICIES });
  await s.agent.manager.firstSvid();
  const m = parsePrometheusText(await s.metrics());
  const ours = [...m.values()].filter((f) => f.name.startsWith('meshid_'));
  t.true(ours.length >= 20, `${ours.length} meshid_ metrics`);
  for (const f of ours) {
    const what = `${f.name} (${f.type})`;
    t.regex(f.name, /^meshid_[a-z]+(_[a-z0-9]+)+$/, `${what}: lower snake case`);
    t.true(f.help.length > 10, `${what}: has help`);
    t.is(f.type === 'counter', f.name.endsWith('_total'), `${what}: counters, and only counters, end in _total`);
    t.false(/_(ms|milliseconds|microseconds|us|minutes|hours|kb|mb|percent)(_|$)/.test(f.name), `${what}: base units only`);
    if (f.type === 'histogram') t.regex(f.name, /_(seconds|bytes)$/, `${what}: a histogram names its unit`);
    if (/(duration|latency|time|remaining|age|lag)/.test(f.name)) t.regex(f.name, /_seconds(_total)?$/, `${what}: times are in seconds`);
    if (/timestamp/.test(f.name)) t.regex(f.name, /_timestamp_seconds$/, `${what}: timestamps are _timestamp_seconds`);
    if (f.name.endsWith('_info')) {
      t.is(f.type, 'gauge', `${what}: an info metric is a gauge`);
      t.true(f.samples.every((x) => x.value === 1), `${what}: an info metric is 1`);
    }
    for (const x of f.samples) for (const label of Object.keys(x.labels)) t.regex(label, /^[a-z][a-z0-9_]*$/, `${what}: label ${label}`);
  }
});

/** Polls an asynchronous condition on real time (for I/O crossing a socket, never for rotation timing). */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

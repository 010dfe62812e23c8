/** Policies and requests shared by the engine and end-to-end parts of bench:authz. */
import type { CompiledPolicySet } from '../src/authz/compile.js';
import type { AuthzInput } from '../src/authz/facts.js';
import { buildPolicySet } from '../src/authz/policy-set.js';

export function benchPolicyText(rules: number): string {
  const doc = (o: unknown) => JSON.stringify(o);
  const meta = (name: string, dryRun = false) => ({
    name,
    namespace: 'bench',
    ...(dryRun ? { annotations: { 'istio.io/dry-run': 'true' } } : {}),
  });
  const base = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy' };
  return [
    doc({ ...base, metadata: meta('deny-admin'), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }, { from: [{ source: { notPrincipals: ['*'] } }] }] } }),
    // Istio's CRD allows at most 512 rules per policy: the rules are spread over policies of 500.
    ...Array.from({ length: Math.ceil(rules / 500) }, (_, p) =>
      doc({
        ...base,
        metadata: meta(`allow-many-${p}`),
        spec: {
          action: 'ALLOW',
          rules: Array.from({ length: Math.min(500, rules - p * 500) }, (_, k) => {
            const i = p * 500 + k;
            return {
              from: [{ source: { principals: [`cluster.local/ns/ns${i % 50}/sa/sa${i}`] } }],
              to: [{ operation: { methods: ['GET', 'POST'], paths: [`/api/${i}`, `/api/${i}/*`] } }],
            };
          }),
        },
      }),
    ),
    doc({ ...base, metadata: meta('audit-writes'), spec: { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['POST', 'PUT', 'DELETE'] } }] }] } }),
    doc({ ...base, metadata: meta('try-tenant', true), spec: { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-tenant]', notValues: ['acme'] }] }] } }),
  ].join('\n---\n');
}

export function compileBenchSet(rules: number): CompiledPolicySet {
  const r = buildPolicySet([{ file: 'bench.yaml', text: benchPolicyText(rules) }]);
  if (!r.ok) throw new Error(`bench policies invalid: ${r.errors[0]?.message}`);
  return r.set;
}

/** Requests that hit a random rule (half), miss (a quarter) or hit the DENY (a quarter). */
export function benchInputs(rules: number, count: number): AuthzInput[] {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  return Array.from({ length: count }, (_, k) => {
    const i = rnd(rules);
    const kind = k % 4;
    return {
      principal: `spiffe://cluster.local/ns/ns${i % 50}/sa/sa${i}`,
      method: kind === 1 ? 'POST' : 'GET',
      host: 'orders.bench.svc.cluster.local:8080',
      path: kind === 2 ? `/api/${(i + 1) % rules}/x?q=1` : kind === 3 ? '/admin/users' : `/api/${i}/items?page=2`,
      sourceIp: '10.1.2.3',
      destinationIp: '10.9.9.9',
      destinationPort: 8080,
      headers: { 'x-tenant': 'acme', ':method': 'GET', 'content-type': 'application/json', 'user-agent': 'bench' },
      sni: 'orders.bench.svc.cluster.local',
    };
  });
}

/** A RateLimitPolicy every bench request counts against (per principal), with a quota no run reaches. */
export function benchLimitText(): string {
  return JSON.stringify({
    apiVersion: 'meshid.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: { name: 'bench-limits', namespace: 'bench' },
    spec: { limits: [{ name: 'per-principal', match: { from: [{ source: { namespaces: ['*'] } }] }, rate: { requests: 1_000_000_000, per: 'second' } }] },
  });
}

/**
 * The differential table: every case of test/authz/fixtures/istio-decisions.ts (taken from Istio's
 * integration tests and builder golden files) decided by the engine, indexed and linear, and a
 * property that a DENY policy holds for every spelling of a path.
 */
import test from 'ava';
import fc from 'fast-check';
import { compilePolicySet, type CompiledPolicySet } from '../../src/authz/compile.js';
import { evaluate } from '../../src/authz/engine.js';
import type { AuthzInput, RequestAuth } from '../../src/authz/facts.js';
import { normalisePath } from '../../src/authz/paths.js';
import { buildPolicySet } from '../../src/authz/policy-set.js';
import { formatIssue } from '../../src/authz/validate.js';
import { A, type DecisionCase, PORTS, SCENARIOS } from './fixtures/istio-decisions.js';

const DEFAULT: AuthzInput = {
  principal: A,
  method: 'GET',
  host: 'b.ns1.svc.cluster.local',
  path: '/',
  headers: {},
  sourceIp: '10.0.0.1',
  destinationIp: '10.0.0.2',
  destinationPort: PORTS.http,
  sni: `outbound_.${PORTS.http}_._.b.ns1.svc.cluster.local`,
};

function compile(policies: ReadonlyArray<Readonly<Record<string, unknown>>>, options: { trustDomain?: string; trustDomainAliases?: readonly string[]; index?: boolean } = {}): CompiledPolicySet {
  const text = policies
    .map((p) =>
      JSON.stringify({
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: p.name, namespace: p.namespace ?? 'ns1', ...(p.annotations ? { annotations: p.annotations } : {}) },
        spec: p.spec,
      }),
    )
    .join('\n---\n');
  const r = buildPolicySet([{ file: 'istio.yaml', text }], 'istio', 'r', options);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.set;
}

function inputOf(c: DecisionCase): AuthzInput {
  const { jwt, ...rest } = c.request;
  const requestAuth: RequestAuth | undefined = jwt && {
    principal: `${String(jwt.iss)}/${String(jwt.sub)}`,
    audiences: Array.isArray(jwt.aud) ? (jwt.aud as string[]) : typeof jwt.aud === 'string' ? [jwt.aud] : [],
    claims: jwt,
  };
  return { ...DEFAULT, ...rest, ...(requestAuth ? { requestAuth } : {}) };
}

let total = 0;
for (const scenario of SCENARIOS) {
  total += scenario.cases.length;
  test(`istio: ${scenario.source}`, (t) => {
    const td = scenario.trustDomain ? { trustDomain: scenario.trustDomain.domain, trustDomainAliases: scenario.trustDomain.aliases } : {};
    const indexed = compile(scenario.policies, td);
    const linear = compilePolicySet(indexed.policies, indexed.revision, { ...td, index: false });
    for (const c of scenario.cases) {
      const d = evaluate(indexed, inputOf(c));
      t.is(d.allow, c.allow, `${c.name}: ${d.reason}${d.rule ? ` ${d.rule.policy.id}#${d.rule.rule}` : ''}${d.detail ? ` (${d.detail})` : ''}`);
      t.is(evaluate(linear, inputOf(c)).allow, c.allow, `${c.name} (linear)`);
    }
  });
}

test('the table holds at least 150 cases from Istio', (t) => {
  t.true(total >= 150, `${total} cases`);
});

// ---- property: a DENY holds for every spelling of its path ------------------------------------

const segment = fc.constantFrom('admin', 'api', 'public', 'private', 'v1', 'x', 'a.b', 'A');
const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`);

/** Spellings Envoy normalises to the same path: dot segments, doubled slashes, encoded unreserved characters. */
const spellingArb = (path: string) =>
  fc.array(fc.constantFrom('dot', 'dotdot', 'slash', 'encode', 'encodeDot', 'lower'), { maxLength: 4 }).chain((ops) =>
    fc.nat({ max: 1000 }).map((seed) => {
      let p = path;
      let n = seed;
      for (const op of ops) {
        const segs = p.split('/');
        const i = 1 + (n++ % Math.max(1, segs.length - 1));
        if (op === 'dot') segs.splice(i, 0, '.');
        else if (op === 'dotdot') segs.splice(i, 0, 'zz', '..');
        else if (op === 'slash') segs.splice(i, 0, '');
        else if (op === 'encode') segs[i] = [...(segs[i] ?? '')].map((ch) => (/[A-Za-z0-9]/.test(ch) ? `%${ch.charCodeAt(0).toString(16).toUpperCase()}` : ch)).join('');
        else if (op === 'encodeDot') segs.splice(i, 0, '%2e');
        else segs[i] = (segs[i] ?? '').replace(/%([0-9A-F]{2})/g, (_, h: string) => `%${h.toLowerCase()}`);
        p = segs.join('/');
      }
      return p;
    }),
  );

const pathPattern = fc.oneof(pathArb, pathArb.map((p) => `${p}*`), pathArb.map((p) => `*${p}`), pathArb.map((p) => `${p.split('/').slice(0, -1).join('/')}/{*}`));

test('property: a DENY on a path denies every spelling that normalises to a path it denies, and adding a DENY never allows', (t) => {
  fc.assert(
    fc.property(pathPattern, pathArb, fc.boolean(), (denied, target, withAllow) => {
      const policies = [
        { name: 'deny', spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: [denied] } }] }] } },
        ...(withAllow ? [{ name: 'allow', spec: { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/*'] } }] }] } }] : []),
      ];
      const withDeny = compile(policies);
      const without = compile(policies.slice(1).length ? policies.slice(1) : [{ name: 'none', spec: { action: 'AUDIT', rules: [{}] } }]);
      const base = evaluate(withDeny, { ...DEFAULT, path: target });
      // Adding the DENY never turns a deny into an allow.
      if (!evaluate(without, { ...DEFAULT, path: target }).allow) t.false(base.allow);
      fc.assert(
        fc.property(spellingArb(target), (spelled) => {
          const n = normalisePath(spelled, 'reject');
          const want = normalisePath(target, 'reject');
          if (!n.ok || !want.ok || n.path !== want.path) return; // another path, or refused outright
          const d = evaluate(withDeny, { ...DEFAULT, path: spelled });
          if (!base.allow) t.false(d.allow, `${spelled} (normalised ${n.path}) slipped past a DENY on ${denied}`);
          t.is(d.allow, base.allow, spelled);
        }),
        { numRuns: 20 },
      );
    }),
    { numRuns: 150 },
  );
});

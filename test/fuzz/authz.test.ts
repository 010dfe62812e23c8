/** Properties of policy loading and CheckRequest decoding (protobuf and JSON). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import YAML from 'yaml';
import { checkRequestFromJson } from '../../src/authz/check-request-json.js';
import { inputFromCheckRequest } from '../../src/authz/check-request.js';
import { evaluate } from '../../src/authz/engine.js';
import type { PeerCertificateStatus } from '../../src/authz/facts.js';
import { buildPolicySet } from '../../src/authz/policy-set.js';
import { startPolicySource } from '../../src/authz/policy-source.js';
import { envoyProtos } from '../../src/envoy/protos.js';
import { MeshidError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { fuzz, mutate, mutationArb } from './harness.js';

const FIXTURE = fileURLToPathSafe('../../../test/fixtures/check-request.json');
function fileURLToPathSafe(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}
const requestJson = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as Record<string, unknown>;
const noCert = (): PeerCertificateStatus => ({ status: 'invalid', reason: 'no certificate in the fuzz input' });

function inputFor(pathValue: string) {
  const json = structuredClone(requestJson) as { attributes: { request: { http: { path: string; headers: Record<string, string> } } } };
  json.attributes.request.http.path = pathValue;
  json.attributes.request.http.headers[':path'] = pathValue;
  const r = inputFromCheckRequest(checkRequestFromJson(json), noCert);
  if (!r.ok) throw new Error(r.reason);
  return r.input;
}

// ---- policy loading ----

/** In force before each change: only /allowed is allowed. */
const GOOD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-one-path
  namespace: shop
spec:
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: ["/allowed"]
`;
/** The change under test: it would allow everything, so a partial load would show as an allow. */
const ALLOW_ALL = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-all
  namespace: shop
spec:
  action: ALLOW
  rules:
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-none
  namespace: shop
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/never"]
`;

const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.boolean(), fc.constant(null), fc.constantFrom('ALLOW', 'DENY', 'AUDIT', 'CUSTOM', '*', '/allowed', 'spiffe://x/y', '10.0.0.0/8', 'request.headers[x]'));
const policyLike = fc.record({
  apiVersion: fc.constantFrom('security.istio.io/v1', 'security.istio.io/v1beta1', 'v1', 7),
  kind: fc.constantFrom('AuthorizationPolicy', 'ConfigMap', ''),
  metadata: fc.record({ name: fc.oneof(scalar, fc.constant('p')), namespace: scalar }, { requiredKeys: [] }),
  spec: fc.dictionary(fc.constantFrom('action', 'rules', 'selector', 'provider', 'targetRefs', 'x'), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 4 }),
}, { requiredKeys: [] });

const policyText = fc.oneof(
  fc.array(mutationArb, { minLength: 1, maxLength: 4 }).map((ms) => mutate(Buffer.from(ALLOW_ALL), ms).toString('latin1')),
  fc.array(policyLike, { maxLength: 3 }).map((docs) => docs.map((d) => YAML.stringify(d)).join('---\n')),
  fc.string({ maxLength: 200 }),
);

fuzz('policy-build', 'buildPolicySet never throws, whatever the documents', fc.property(fc.array(policyText, { minLength: 1, maxLength: 3 }), (texts) => {
  const r = buildPolicySet(texts.map((text, i) => ({ file: `p${i}.yaml`, text })));
  if (!r.ok && r.errors.length === 0) throw new Error('refused without saying why');
}), { runs: 400 });

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-fuzz-policy-'));
test.after.always(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirs = 0;

fuzz('policy-no-allow-from-rejected', 'a change that fails to load never allows: the set in force (or deny-all) keeps deciding', fc.asyncProperty(policyText, fc.boolean(), async (text, withGoodFirst) => {
  const dir = path.join(tmpRoot, `d${dirs++}`);
  fs.mkdirSync(dir);
  const source = await startPolicySource({ dir, clock: new FakeClock(), logger: silentLogger(), watch: false, resyncMs: 0 });
  try {
    if (withGoodFirst) {
      fs.writeFileSync(path.join(dir, '10-good.yaml'), GOOD);
      const first = await source.reload();
      if (first.status !== 'loaded') throw new Error(`the good policy did not load: ${JSON.stringify(first)}`);
    }
    const before = source.current();
    fs.writeFileSync(path.join(dir, '20-change.yaml'), text);
    const outcome = await source.reload();
    if (outcome.status !== 'rejected') return;
    const after = source.current();
    if (after !== before) throw new Error('a rejected change replaced the set in force');
    if (withGoodFirst) {
      if (!after || evaluate(after, inputFor('/secret')).allow) throw new Error('a rejected change allowed /secret');
      if (!evaluate(after, inputFor('/allowed')).allow) throw new Error('the set in force stopped allowing /allowed');
    }
  } finally {
    await source.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}), { runs: 150 });

// ---- CheckRequest decoding ----

const validBytes = Buffer.from(envoyProtos().CheckRequest.encode(envoyProtos().CheckRequest.fromObject(checkRequestFromJson(requestJson))).finish());

function decodeAndRead(bytes: Uint8Array): void {
  let req;
  try {
    req = envoyProtos().CheckRequest.decode(bytes); // the server's deserializer: a throw is answered as undecodable
  } catch {
    return;
  }
  const r = inputFromCheckRequest(req as never, noCert);
  if (r.ok) {
    if (!r.input.method || !r.input.path) throw new Error('a decidable input without a method or path');
  } else if (!r.reason) throw new Error('undecidable without a reason');
}

fuzz('check-request-protobuf', 'any bytes, and mutations of a valid CheckRequest, decode to an input or a reason, never a crash', fc.property(
  fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.array(mutationArb, { minLength: 1, maxLength: 5 }).map((ms) => mutate(validBytes, ms))),
  (bytes) => decodeAndRead(bytes)), { runs: 2000 });

fuzz('check-request-json', 'any JSON, and edits of a valid one, convert to a CheckRequest or a check_request_invalid error', fc.property(
  fc.oneof(
    fc.jsonValue({ maxDepth: 5 }),
    fc.tuple(fc.constantFrom('attributes', 'request', 'http', 'headers', 'source', 'address', 'socketAddress', 'portValue', 'method', 'path', 'certificate', 'metadataContext'), fc.jsonValue({ maxDepth: 3 }))
      .map(([key, value]) => replaceKey(structuredClone(requestJson), key, value)),
  ),
  (json) => {
    let req;
    try {
      req = checkRequestFromJson(json);
    } catch (e) {
      if (e instanceof MeshidError && e.code === 'check_request_invalid') return;
      throw e;
    }
    const r = inputFromCheckRequest(req, noCert);
    if (!r.ok && !r.reason) throw new Error('undecidable without a reason');
  }), { runs: 1500 });

function replaceKey(obj: unknown, key: string, value: unknown): unknown {
  if (!obj || typeof obj !== 'object') return obj;
  for (const k of Object.keys(obj)) {
    const o = obj as Record<string, unknown>;
    if (k === key) o[k] = value;
    else replaceKey(o[k], key, value);
  }
  return obj;
}

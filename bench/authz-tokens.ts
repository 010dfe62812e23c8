/**
 * bench:authz part (c): the Check with bearer-token verification (--jwt-rules), in process, on
 * the function the ext_authz server calls for every request (decideCheckRequestWithTokens), with
 * 1,000 ALLOW rules. Three kinds of request, interleaved in blocks so the machine's noise falls on
 * all three alike:
 *   plain    no token: the plain Check (the baseline of the ratios);
 *   cached   the same ES256 token every time: the verifier's cache answers;
 *   varying  TOKENS distinct tokens in turn, more than the cache holds (jwt-verify.ts keeps 1,024,
 *            oldest out first), so every one is a full signature check.
 * Each figure is the mean microseconds per decision over the whole run, awaiting each decision.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CertificateCheck } from '../src/authz/check-request.js';
import { decideCheckRequestWithTokens } from '../src/authz/decide.js';
import { parseJwtRules } from '../src/authz/jwt-rules.js';
import { RequestAuthenticator } from '../src/authz/jwt-verify.js';
import { DevTokenIssuer } from '../src/demo/dev-issuer.js';
import type { CheckRequest } from '../src/envoy/protos.js';
import { compileBenchSet } from './authz-fixtures.js';

export const TOKENS = 4096;
const BLOCK = 256;

export interface TokenFigures {
  readonly plainUs: number;
  readonly cachedUs: number;
  readonly varyingUs: number;
}

/** The dev issuer in a temporary directory, its jwtRules (inline JWKS) and `count` distinct tokens. */
export async function benchTokens(count: number): Promise<{ rulesYaml: string; tokens: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bench-tokens-'));
  try {
    const issuer = await DevTokenIssuer.open(dir);
    const now = Date.now();
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) tokens.push(await issuer.accessToken(`spiffe://cluster.local/ns/bench/sa/client${i}`, ['bench-api'], 3_600_000, now));
    const rulesYaml = `jwtRules:\n  - issuer: meshid-dev\n    audiences: [bench-api]\n    jwks: ${JSON.stringify(issuer.jwks())}\n`;
    return { rulesYaml, tokens };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function request(token: string | undefined): CheckRequest {
  const i = 7;
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 51234 } }, principal: `spiffe://cluster.local/ns/ns${i % 50}/sa/sa${i}` },
      destination: { address: { socket_address: { address: '10.9.9.9', port_value: 8080 } } },
      request: {
        http: {
          id: 'bench',
          method: 'GET',
          path: `/api/${i}/items?page=2`,
          host: 'orders.bench.svc.cluster.local',
          headers: { 'x-tenant': 'acme', 'user-agent': 'bench/1.0', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        },
      },
      tls_session: { sni: 'orders.bench.svc.cluster.local' },
    },
  };
}

export async function runTokenBench(options: { quick: boolean }): Promise<TokenFigures> {
  const set = compileBenchSet(1_000);
  const { rulesYaml, tokens } = await benchTokens(TOKENS);
  const authenticator = await RequestAuthenticator.create(parseJwtRules(rulesYaml, 'bench rules'), { now: () => Date.now() });
  const auth = { authenticator, metadataKey: undefined };
  const noCertificate: CertificateCheck = () => {
    throw new Error('the bench request carries no peer certificate');
  };
  const plain = request(undefined);
  const cached = request(tokens[0]);
  const varying = tokens.map((t) => request(t));

  const decide = async (r: CheckRequest): Promise<void> => {
    const o = await decideCheckRequestWithTokens(set, r, noCertificate, auth);
    if (!o.decision.allow) throw new Error(`bench: the request was denied (${o.decision.reason}: ${o.decision.detail})`);
  };
  // Warm-up: JIT, and every path once.
  for (let i = 0; i < 2_000; i++) {
    await decide(plain);
    await decide(cached);
    await decide(varying[i % TOKENS]!);
  }
  const blocks = options.quick ? 8 : 32;
  const total = { plain: 0, cached: 0, varying: 0 };
  let v = 0;
  for (let b = 0; b < blocks; b++) {
    let t0 = performance.now();
    for (let i = 0; i < BLOCK; i++) await decide(plain);
    total.plain += performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < BLOCK; i++) await decide(cached);
    total.cached += performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < BLOCK; i++) await decide(varying[v++ % TOKENS]!);
    total.varying += performance.now() - t0;
  }
  const us = (ms: number) => Number(((ms * 1000) / (blocks * BLOCK)).toFixed(2));
  return { plainUs: us(total.plain), cachedUs: us(total.cached), varyingUs: us(total.varying) };
}

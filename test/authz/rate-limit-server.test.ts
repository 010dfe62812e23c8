/**
 * Rate limits through the real ext_authz server: Check calls over gRPC decoded with Envoy's protos,
 * counters in memory on the fake clock, or shared through a real redis-server.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type AuthzService, type AuthzServiceConfig, startAuthzService } from '../../src/authz/server.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { startRedis } from '../helpers/redis-server.js';
import { tempDir } from '../helpers/tmp.js';
import { ALLOW_PARTNERS, PARTNER_A, partnerALimit } from './helpers/rate-limit-policies.js';
import { authzClient, type AuthzClient, capturingLogger, checkRequest, metadataOf } from './helpers/authz-client.js';
import type { CheckResponse__Output } from '../../src/envoy/protos.js';

const limitFile = (requests: number) => partnerALimit(requests);

function policyDir(t: ExecutionContext, files: Record<string, string>): string {
  const dir = path.join(tempDir(t), 'policies');
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

async function start(t: ExecutionContext, dir: string, config: Partial<AuthzServiceConfig> = {}, clock = new FakeClock()) {
  const { logger, lines } = capturingLogger();
  const service: AuthzService = await startAuthzService(
    { listen: { host: '127.0.0.1', port: 0 }, policyDir: dir, resyncMs: 0, reloadDebounceMs: 50, ...config },
    { logger, clock },
  );
  const client: AuthzClient = authzClient(`127.0.0.1:${service.tcpPort}`);
  t.teardown(async () => {
    client.close();
    await service.close();
  });
  return { service, client, clock, logs: lines };
}

const asPartnerA = () => checkRequest({ principal: PARTNER_A });

function headers(list: Array<{ header?: { key?: string; value?: string } }> | undefined): Record<string, string | undefined> {
  return Object.fromEntries((list ?? []).map((h) => [h.header?.key, h.header?.value]));
}

function okHeaders(r: CheckResponse__Output): Record<string, string | undefined> {
  return headers((r.ok_response as { response_headers_to_add?: Array<{ header?: { key?: string; value?: string } }> } | undefined)?.response_headers_to_add);
}

test('under the limit: allowed, with RateLimit-Policy and RateLimit headers; over it: 429 with Retry-After', async (t) => {
  const { client, clock, logs } = await start(t, policyDir(t, { 'allow.yaml': ALLOW_PARTNERS, 'limits.yaml': limitFile(3) }));
  for (let i = 0; i < 3; i++) {
    const r = await client.check(asPartnerA());
    t.is(r.status?.code ?? 0, 0, `request ${i + 1} is allowed`);
    t.deepEqual(okHeaders(r), { 'ratelimit-policy': '"gateway/partners/partner-a";q=3;w=60', ratelimit: `"gateway/partners/partner-a";r=${2 - i};t=${20 * (i + 1)}` });
    t.is(metadataOf(r).rate_limit, 'gateway/partners/partner-a');
  }
  const over = await client.check(asPartnerA());
  t.is(over.status?.code, 8, 'RESOURCE_EXHAUSTED');
  t.is(over.status?.message, 'rate_limited');
  t.is(over.denied_response?.status?.code, 'TooManyRequests');
  t.like(headers(over.denied_response?.headers), {
    'retry-after': '20',
    'ratelimit-policy': '"gateway/partners/partner-a";q=3;w=60',
    ratelimit: '"gateway/partners/partner-a";r=0;t=60',
  });
  t.regex(over.denied_response?.body ?? '', /^rate limit exceeded: gateway\/partners\/partner-a; decision [0-9a-f-]{36}\n$/);
  t.like(metadataOf(over), { decision: 'deny', reason: 'rate_limited', rate_limit: 'gateway/partners/partner-a', policy: 'gateway/allow-partners' });
  const line = logs().find((l) => l.reason === 'rate_limited');
  t.like(line, { outcome: 'deny', rate_limit: 'gateway/partners/partner-a', rate_limit_remaining: 0 });

  await clock.advance(20_000);
  t.is((await client.check(asPartnerA())).status?.code ?? 0, 0, 'one interval later, one more passes');
  t.is((await client.check(asPartnerA())).status?.code, 8);
  const other = await client.check(checkRequest({ principal: 'spiffe://example.org/ns/partners/sa/partner-b' }));
  t.is(other.status?.code ?? 0, 0, 'a principal no limit names is not limited');
  t.deepEqual(okHeaders(other), {});
});

test('a policy edit keeps the counters of limits it leaves in place', async (t) => {
  const dir = policyDir(t, { 'allow.yaml': ALLOW_PARTNERS, 'limits.yaml': limitFile(2) });
  const { client, service } = await start(t, dir);
  await client.check(asPartnerA());
  await client.check(asPartnerA());
  t.is((await client.check(asPartnerA())).status?.code, 8);
  const before = service.revision();
  fs.writeFileSync(path.join(dir, 'other.yaml'), ALLOW_PARTNERS.replace('allow-partners', 'allow-more'));
  t.like(await service.policies.reload(), { status: 'loaded' });
  t.not(service.revision(), before);
  t.is((await client.check(asPartnerA())).status?.code, 8, 'still over the limit after the reload');
  // A bad edit of the limit is refused and the old limit (and its counter) stays.
  fs.writeFileSync(path.join(dir, 'limits.yaml'), limitFile(0));
  t.like(await service.policies.reload(), { status: 'rejected' });
  t.is((await client.check(asPartnerA())).status?.code, 8);
});

test('two agents sharing one real Redis enforce one 100-a-minute limit between them, within 2 %', async (t) => {
  t.timeout(30_000);
  const redis = await startRedis(t);
  // A generous timeout: on a loaded machine a slow answer must not turn into a local (per-agent) decision.
  const rateLimit = { redis: { url: redis.url, timeoutMs: 5000, fallback: 'local' as const } };
  const files = { 'allow.yaml': ALLOW_PARTNERS, 'limits.yaml': limitFile(100) };
  const a = await start(t, policyDir(t, files), { rateLimit });
  const b = await start(t, policyDir(t, files), { rateLimit });
  let allowed = 0;
  const statuses = new Map<number, number>();
  const began = performance.now();
  for (let round = 0; round < 10; round++) {
    const batch = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).client.check(asPartnerA())));
    for (const r of batch) {
      const code = r.status?.code ?? 0;
      statuses.set(code, (statuses.get(code) ?? 0) + 1);
      if (code === 0) allowed++;
    }
  }
  const elapsedMs = performance.now() - began;
  // What one GCRA counter allows over the run: the burst of 100, plus one per 600 ms that passed.
  const allowance = 100 + Math.floor(elapsedMs / 600);
  t.log(`300 requests through two agents in ${Math.round(elapsedMs)} ms: ${allowed} allowed (one counter allows ${allowance}); status codes ${JSON.stringify([...statuses])}`);
  t.true(allowed >= 100, `${allowed} allowed: no request under the limit was refused`);
  t.true(allowed <= allowance + 1, `${allowed} allowed, one shared counter allows ${allowance}`);
  t.true(Math.abs(allowed - allowance) / allowance <= 0.02, `${allowed} vs ${allowance}: within 2 %`);
  t.is(allowed + (statuses.get(8) ?? 0), 300, 'everything else is a 429, nothing fails');

  // Redis dies mid-test: every Check is still answered, promptly, by the local fallback.
  await redis.kill();
  const startedAt = performance.now();
  const after = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).client.check(asPartnerA())));
  const elapsed = performance.now() - startedAt;
  t.true(after.every((r) => (r.status?.code ?? 0) === 0), 'fresh local counters allow these 20 (10 per agent, under 100 each)');
  t.true(elapsed < 5000, `answered in ${Math.round(elapsed)} ms`);
  const degraded = a.logs().find((l) => typeof l.msg === 'string' && l.msg.includes('Redis not answering'));
  t.truthy(degraded, 'the agent says Redis is not answering and which fallback decides');
  t.truthy(a.logs().find((l) => l.rate_limit_counter === 'fallback_local'), 'the decision line names the fallback');
});

test('fallback open and closed, when Redis cannot be reached at all', async (t) => {
  const dead = `unix://${path.join(tempDir(t), 'no-redis.sock')}`;
  const files = { 'allow.yaml': ALLOW_PARTNERS, 'limits.yaml': limitFile(1) };
  const open = await start(t, policyDir(t, files), { rateLimit: { redis: { url: dead, timeoutMs: 50, fallback: 'open' } } });
  const closed = await start(t, policyDir(t, files), { rateLimit: { redis: { url: dead, timeoutMs: 50, fallback: 'closed' } } });
  for (let i = 0; i < 3; i++) t.is((await open.client.check(asPartnerA())).status?.code ?? 0, 0, 'open: allowed, the limit is not enforced');
  const r = await closed.client.check(asPartnerA());
  t.is(r.status?.code, 14);
  t.is(r.denied_response?.status?.code, 'ServiceUnavailable');
  t.is(headers(r.denied_response?.headers)['retry-after'], '1');
  t.like(metadataOf(r), { reason: 'rate_limit_unavailable', rate_limit: 'gateway/partners/partner-a' });
});

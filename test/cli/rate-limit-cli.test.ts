import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { tempDir } from '../helpers/tmp.js';
import { runCli } from '../authz/helpers/cli.js';
import { ALLOW_PARTNERS, partnerALimit } from '../authz/helpers/rate-limit-policies.js';

const POLICIES = { 'allow.yaml': ALLOW_PARTNERS, 'limits.yaml': partnerALimit(1000, 'minute', 50) };

function dir(t: ExecutionContext): string {
  const d = path.join(tempDir(t), 'policies');
  fs.mkdirSync(d);
  for (const [name, text] of Object.entries(POLICIES)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

test('policy lint lists each rate limit with its rate, burst and partition', async (t) => {
  const d = dir(t);
  const r = await runCli(['policy', 'lint', d]);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /gateway\/partners\/partner-a\s+LIMIT 1000\/minute, burst 50, per principal; limits.yaml doc 1/);
  const j = JSON.parse((await runCli(['policy', 'lint', '--json', d])).stdout) as { rateLimits: Array<Record<string, unknown>> };
  t.like(j.rateLimits[0], { id: 'gateway/partners/partner-a', requests: 1000, unit: 'minute', burst: 50, partition: 'principal' });
});

test('authz check names the limit an allowed request would count against', async (t) => {
  const d = dir(t);
  const file = path.join(tempDir(t), 'req.json');
  const request = (principal: string) => ({ attributes: { source: { principal }, request: { http: { method: 'GET', path: '/x', host: 'api' } } } });
  fs.writeFileSync(file, JSON.stringify(request('spiffe://example.org/ns/partners/sa/partner-a')));
  const r = await runCli(['authz', 'check', '--policy-dir', d, '--request', file]);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  t.is(j.decision, 'allow');
  t.like(j.rateLimit, { limit: 'gateway/partners/partner-a', requests: 1000, per: 'minute', burst: 50, counter: 'gateway/partners/partner-a|principal|spiffe://example.org/ns/partners/sa/partner-a' });
  fs.writeFileSync(file, JSON.stringify(request('spiffe://example.org/ns/partners/sa/partner-b')));
  t.is((JSON.parse((await runCli(['authz', 'check', '--policy-dir', d, '--request', file])).stdout) as Record<string, unknown>).rateLimit, null);
});

/**
 * The expiry watch in the agent's metric set: the soonest notAfter per partner among the
 * certificates ext_authz saw in the last 24 h, with a bounded label set, and the SVID's own
 * remaining lifetime. Driven through the hooks the components call, on a fake clock.
 */
import test from 'ava';
import { AgentMetrics, PARTNER_CERTIFICATES_MAX, PARTNER_LABELS_MAX, PARTNER_SEEN_WINDOW_MS } from '../../src/cli/agent-metrics.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { parsePrometheusText, samplesOf, valueOf } from './prometheus-text.js';

const DAY = 86_400_000;

test('partner certificates: the soonest notAfter per partner, forgotten after 24 h unseen; the SVID remaining seconds', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const m = new AgentMetrics(clock);
  const hooks = m.authzHooks();
  const now = clock.now();
  // meshid's own series only (the process metrics read NaN on a registry this young).
  const scrape = async () => parsePrometheusText((await m.metrics()).split('\n').filter((l) => l.includes('meshid_')).join('\n'));
  const expiry = 'meshid_partner_certificate_expiry_timestamp_seconds';
  const remaining = 'meshid_partner_certificate_remaining_seconds';

  t.deepEqual(samplesOf(await scrape(), expiry), [], 'nothing seen: no series');
  hooks.partnerCertificate('globex', 'a'.repeat(64), now + 30 * DAY);
  hooks.partnerCertificate('globex', 'b'.repeat(64), now + 10 * DAY);
  hooks.partnerCertificate('initech', 'c'.repeat(64), now + 90 * DAY);
  let s = await scrape();
  t.is(valueOf(s, expiry, { partner: 'globex' }), (now + 10 * DAY) / 1000);
  t.is(valueOf(s, remaining, { partner: 'globex' }), 10 * DAY / 1000);
  t.is(valueOf(s, expiry, { partner: 'initech' }), (now + 90 * DAY) / 1000);

  // globex rotated: only the new certificate keeps being presented; a day later the old one no longer counts.
  clock.jump(PARTNER_SEEN_WINDOW_MS / 2);
  hooks.partnerCertificate('globex', 'a'.repeat(64), now + 30 * DAY);
  clock.jump(PARTNER_SEEN_WINDOW_MS / 2 + 1);
  s = await scrape();
  t.is(valueOf(s, expiry, { partner: 'globex' }), (now + 30 * DAY) / 1000);
  t.deepEqual(samplesOf(s, expiry).map((x) => x.labels.partner), ['globex'], 'initech unseen for 24 h: its series is gone');

  // Bounded: partners beyond the label cap and certificates beyond the per-partner cap are not kept.
  for (let i = 0; i < PARTNER_LABELS_MAX + 5; i++) hooks.partnerCertificate(`p${i}`, 'd'.repeat(64), now + DAY);
  t.is(samplesOf(await scrape(), expiry).length, PARTNER_LABELS_MAX);
  for (let i = 0; i < PARTNER_CERTIFICATES_MAX + 3; i++) {
    clock.jump(1);
    hooks.partnerCertificate('globex', i.toString(16).padStart(64, '0'), now + (40 + i) * DAY);
  }
  t.is(valueOf(await scrape(), expiry, { partner: 'globex' }), (now + (40 + 3) * DAY) / 1000, 'the least recently seen certificates made room');

  // The agent's own SVID: seconds until notAfter.
  m.svidHooks().expiry(clock.now() + 3_600_000);
  t.is(valueOf(await scrape(), 'meshid_svid_remaining_seconds'), 3600);
});

import test from 'ava';
import { startAdminServer } from '../../src/observability/admin.js';
import { MeshidError } from '../../src/lib/errors.js';

const metrics = { contentType: 'text/plain', metrics: async () => '' };

test('a bind error names the address and the flag that set it (--admin-listen), exit 1', async (t) => {
  const first = await startAdminServer({ host: '127.0.0.1', port: 0 }, () => ({}), metrics);
  t.teardown(() => first.close());
  const e = await t.throwsAsync(startAdminServer({ host: '127.0.0.1', port: first.port }, () => ({}), metrics), { instanceOf: MeshidError });
  t.is(e?.code, 'listen_failed');
  t.is(e?.exitCode, 1);
  t.regex(e!.message, new RegExp(`^admin endpoint cannot listen on 127\\.0\\.0\\.1:${first.port} \\(--admin-listen\\): .*EADDRINUSE`));
});

test('/readyz names the pid, the process SIGUSR1 should reach', async (t) => {
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0 }, () => ({ svid: true }), metrics);
  t.teardown(() => admin.close());
  const body = (await (await fetch(`${admin.url}/readyz`)).json()) as Record<string, unknown>;
  t.deepEqual(body, { ready: true, checks: { svid: true }, pid: process.pid });
});

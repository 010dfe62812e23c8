/**
 * Istio's validation verdicts (test/authz/fixtures/istio-validation.ts, ported from its webhook and
 * CRD tests): every row is loaded by meshid's validation, and all of them at once by
 * `meshid policy lint`, which must accept what Istio accepts and refuse what Istio refuses.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parsePolicyFile } from '../../src/authz/validate.js';
import { tempDir } from '../helpers/tmp.js';
import { runCli } from './helpers/cli.js';
import { ROWS, type ValidationRow } from './fixtures/istio-validation.js';

function docOf(r: ValidationRow, name = 'name'): string {
  return JSON.stringify({
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: 'namespace', ...(r.annotations ? { annotations: r.annotations } : {}) },
    spec: r.spec,
  });
}

for (const r of ROWS) {
  test(`istio verdict: ${r.row}`, (t) => {
    const parsed = parsePolicyFile('row.yaml', docOf(r));
    const errors = parsed.errors.map((e) => `${e.code} ${e.path ?? ''}: ${e.message}`);
    t.is(parsed.errors.length === 0, r.valid, r.valid ? `refused a policy Istio accepts: ${errors.join('; ')}` : 'accepted a policy Istio refuses');
    if (r.warning) t.true(parsed.warnings.some((w) => w.code === r.warning), `expected warning ${r.warning}`);
  });
}

test('meshid policy lint gives every row Istio\'s verdict', async (t) => {
  const dir = tempDir(t);
  ROWS.forEach((r, i) => fs.writeFileSync(path.join(dir, `row-${String(i).padStart(3, '0')}.yaml`), docOf(r, `row-${i}`)));
  const lint = await runCli(['policy', 'lint', '--json', dir]);
  t.is(lint.code, 1, 'the directory holds invalid rows');
  const out = JSON.parse(lint.stdout) as { errors: Array<{ file: string }> };
  const refused = new Set(out.errors.map((e) => e.file));
  ROWS.forEach((r, i) => {
    const file = `row-${String(i).padStart(3, '0')}.yaml`;
    t.is(!refused.has(file), r.valid, `${r.row} (${file})`);
  });
});

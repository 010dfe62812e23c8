import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { readPolicyDir } from '../../src/authz/policy-dir.js';
import { buildPolicySet } from '../../src/authz/policy-set.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { startPolicySource } from '../../src/authz/policy-source.js';
import { tempDir } from '../helpers/tmp.js';
import { capturingLogger } from './helpers/authz-client.js';
import { policyDoc } from './helpers/policies.js';

const doc = (name: string) => policyDoc({ name, action: 'ALLOW', rules: [{}] });

test('a Kubernetes ConfigMap layout (symlinks into ..data, hidden generations) loads each policy once', async (t) => {
  const dir = tempDir(t);
  const gen = path.join(dir, '..2026_01_01_00_00_00.000000001');
  fs.mkdirSync(gen);
  fs.writeFileSync(path.join(gen, 'a.yaml'), doc('a'));
  fs.writeFileSync(path.join(gen, 'b.yml'), `${doc('b')}\n---\n${doc('c')}`);
  fs.symlinkSync(path.basename(gen), path.join(dir, '..data'));
  fs.symlinkSync('..data/a.yaml', path.join(dir, 'a.yaml'));
  fs.symlinkSync('..data/b.yml', path.join(dir, 'b.yml'));
  // A leftover older generation must not be read either.
  const old = path.join(dir, '..2025_12_31_00_00_00.000000001');
  fs.mkdirSync(old);
  fs.writeFileSync(path.join(old, 'a.yaml'), doc('old'));
  const r = await readPolicyDir(dir);
  t.true(r.ok);
  if (!r.ok) return;
  t.deepEqual(r.files.map((f) => f.file), ['a.yaml', 'b.yml']);
  const set = buildPolicySet(r.files);
  t.true(set.ok);
  if (set.ok) t.deepEqual(set.set.policies.map((p) => p.id), ['shop/a', 'shop/b', 'shop/c']);
});

test('a plain directory: sorted, subdirectories walked, hidden entries and other extensions skipped, symlinked duplicates read once', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'z.yaml'), doc('z'));
  fs.mkdirSync(path.join(dir, 'team'));
  fs.writeFileSync(path.join(dir, 'team', 'm.YAML'), doc('m'));
  fs.writeFileSync(path.join(dir, '.hidden.yaml'), 'not: [valid');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
  fs.writeFileSync(path.join(dir, 'a.yaml~'), 'ignored');
  fs.symlinkSync('z.yaml', path.join(dir, 'alias.yaml'));
  fs.symlinkSync('.', path.join(dir, 'loop')); // a directory cycle
  const r = await readPolicyDir(dir);
  t.true(r.ok);
  if (r.ok) t.deepEqual(r.files.map((f) => f.file), ['team/m.YAML', 'z.yaml']);
});

test('a missing directory or a file instead of one is an error naming it', async (t) => {
  const dir = tempDir(t);
  const missing = await readPolicyDir(path.join(dir, 'nope'));
  t.false(missing.ok);
  if (!missing.ok) t.regex(missing.error.message, /does not exist/);
  fs.writeFileSync(path.join(dir, 'file'), '');
  const notDir = await readPolicyDir(path.join(dir, 'file'));
  t.false(notDir.ok);
  if (!notDir.ok) t.regex(notDir.error.message, /ENOTDIR/);
});

test('policy source: unchanged content is not reloaded; a broken edit keeps the set and is logged once; a vanished directory keeps it too', async (t) => {
  const dir = path.join(tempDir(t), 'p');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'a.yaml'), doc('a'));
  const { logger, lines } = capturingLogger();
  const source = await startPolicySource({ dir, clock: new FakeClock(), logger, watch: false, resyncMs: 0 });
  t.teardown(() => source.close());
  const first = source.current();
  t.truthy(first);
  t.deepEqual(await source.reload(), { status: 'unchanged', revision: first!.revision });
  t.is(source.current(), first, 'the same compiled set object');

  fs.writeFileSync(path.join(dir, 'a.yaml'), doc('a').replace('"rules"', '"rulez"'));
  const rejected = await source.reload();
  t.is(rejected.status, 'rejected');
  t.is(rejected.status === 'rejected' ? rejected.kept : '', first!.revision);
  t.is(source.current(), first);
  await source.reload(); // the same broken content again
  const errorLines = lines().filter((l) => l.level === 'error' && String(l.msg).startsWith('invalid policy:'));
  t.is(errorLines.length, 1, 'the same broken content is logged once');
  t.like(errorLines[0], { file: 'a.yaml', field: 'spec.rulez', code: 'unknown_field' });

  fs.rmSync(dir, { recursive: true });
  const gone = await source.reload();
  t.is(gone.status, 'rejected');
  t.is(source.current(), first, 'the last good set stays in force');

  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'b.yaml'), doc('b'));
  const loaded = await source.reload();
  t.is(loaded.status, 'loaded');
  t.deepEqual(source.current()?.policies.map((p) => p.id), ['shop/b']);
});

test('policy source: after a rejected edit, the next valid set logs "policy set valid again", as does reverting the edit', async (t) => {
  const dir = path.join(tempDir(t), 'p');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'a.yaml'), doc('a'));
  const { logger, lines } = capturingLogger();
  const source = await startPolicySource({ dir, clock: new FakeClock(), logger, watch: false, resyncMs: 0 });
  t.teardown(() => source.close());
  const again = () => lines().filter((l) => l.event === 'policy_valid_again');
  t.is((await source.reload()).status, 'unchanged');
  t.is(again().length, 0, 'nothing to recover from');

  fs.writeFileSync(path.join(dir, 'a.yaml'), 'not: [valid');
  t.is((await source.reload()).status, 'rejected');
  fs.writeFileSync(path.join(dir, 'a.yaml'), doc('a'));
  const reverted = await source.reload();
  t.is(reverted.status, 'unchanged');
  t.is(again().length, 1);
  t.regex(String(again()[0]?.msg), /^policy set valid again: the rejected change was reverted; revision \w+ stays in force$/);

  fs.writeFileSync(path.join(dir, 'a.yaml'), 'not: [valid');
  await source.reload();
  fs.writeFileSync(path.join(dir, 'a.yaml'), doc('b'));
  const loaded = await source.reload();
  t.is(loaded.status, 'loaded');
  t.is(again().length, 2);
  t.regex(String(again()[1]?.msg), /^policy set valid again: revision \w+ in force$/);
  t.is((await source.reload()).status, 'unchanged');
  t.is(again().length, 2, 'said once per recovery');
});

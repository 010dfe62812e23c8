/**
 * README.md's configuration reference is generated from the option specs and must match them:
 * this test fails when an option is added, renamed or re-described without `npm run docs:options`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { envName } from '../../src/config/options.js';
import { packagePath } from '../../src/lib/package-path.js';
import {
  BEGIN_MARKER,
  currentSection,
  DOCUMENTED_COMMANDS,
  END_MARKER,
  MarkerError,
  renderOptionsReference,
  withSection,
} from '../../scripts/options-reference.js';
import { tempDir } from '../helpers/tmp.js';

const README = fs.readFileSync('README.md', 'utf8');
const generated = renderOptionsReference();
const SCRIPT = fileURLToPath(new URL('../../scripts/options-doc.js', import.meta.url));

test('README.md holds the generated option reference, and it is up to date (else: npm run docs:options)', (t) => {
  const section = currentSection(README);
  t.truthy(section, `README.md has no ${BEGIN_MARKER} ... ${END_MARKER} section: run npm run docs:options`);
  t.is(section, generated, 'README.md option reference is out of date: run npm run docs:options');
});

test('the reference has one row per option of agent, ca and dev, with flag, YAML key, environment variable and default', (t) => {
  t.deepEqual(DOCUMENTED_COMMANDS.map((c) => c.name), ['agent', 'ca', 'dev']);
  const tables = generated.split(/^### /m).slice(1);
  t.is(tables.length, 3);
  DOCUMENTED_COMMANDS.forEach((command, i) => {
    const table = tables[i]!;
    t.true(table.startsWith(`\`meshid ${command.name}\``));
    const rows = table.split('\n').filter((l) => l.startsWith('| `--'));
    const specs = Object.values(command.options);
    t.is(rows.length, specs.length, `meshid ${command.name}`);
    specs.forEach((spec, j) => {
      const cells = rows[j]!.split(/ (?<!\\)\| /);
      t.true(cells[0]!.startsWith(`| \`--${spec.flag}`), rows[j]);
      t.is(cells[1], `\`${spec.flag}\``);
      t.is(cells[2], `\`${envName(spec.flag)}\``);
      if (spec.required) t.is(cells[3], 'required');
    });
  });
  t.regex(generated, /\| `--ca-timeout DURATION` \| `ca-timeout` \| `MESHID_CA_TIMEOUT` \| `10s` \|/);
  t.regex(generated, /\| `--san NAME` \| `san` \| `MESHID_SAN` \|  \|/, 'an empty list default shows as no default');
});

test('defaults inside the meshid package are shown relative to it, never as this checkout’s path', (t) => {
  t.false(generated.includes(packagePath()), 'an absolute path of this checkout is in the reference');
  t.regex(generated, /\| `--policy-dir DIR` \| `policy-dir` \| `MESHID_POLICY_DIR` \| `deploy\/policies` in the meshid package \|/);
  // Rendered for another install location, the reference is the same: the README does not depend on where it is generated.
  t.is(renderOptionsReference(DOCUMENTED_COMMANDS, '/opt/elsewhere'), generated.replace('`deploy/policies` in the meshid package', `\`${packagePath('deploy', 'policies')}\``));
});

test('table cells escape what would break the Markdown table or render as HTML', (t) => {
  t.regex(generated, /`--log-level trace\\\|debug\\\|info\\\|warn\\\|error\\\|fatal`/);
  t.regex(generated, /spiffe:\/\/&lt;td&gt;\/ns\/&lt;ns&gt;\/sa\/&lt;sa&gt;/);
  for (const line of generated.split('\n').filter((l) => l.startsWith('| `--'))) t.is(line.split(/ (?<!\\)\| /).length, 5, line);
});

test('a stale README fails the comparison; rewriting replaces only the marked section, and is idempotent', (t) => {
  const stale = README.replace(/^\| `--ca-timeout.*\n/m, '');
  t.not(stale, README);
  t.not(currentSection(stale), generated);
  const rewritten = withSection(stale, generated);
  t.false(rewritten.appended);
  t.is(rewritten.text, README);
  t.is(withSection(README, generated).text, README);

  const fresh = withSection('# meshid\n\nIntro.\n', generated);
  t.true(fresh.appended);
  t.true(fresh.text.startsWith('# meshid\n\nIntro.\n\n## Configuration reference\n\n<!-- options:begin -->'));
  t.is(currentSection(fresh.text), generated);

  t.throws(() => currentSection(`${BEGIN_MARKER}\nno end\n`), { instanceOf: MarkerError });
  t.throws(() => currentSection(`${END_MARKER}\n${BEGIN_MARKER}\n`), { instanceOf: MarkerError });
  t.throws(() => withSection(`${generated}\n${generated}\n`, generated), { instanceOf: MarkerError });
});

test('npm run docs:options (the script) rewrites a stale README in place, and --check tells stale from fresh', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'README.md');
  fs.writeFileSync(file, README.replace('| `--demo` |', '| `--demo-old` |'));
  const run = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, ...args, file], { encoding: 'utf8' });

  const stale = run('--check');
  t.is(stale.status, 1);
  t.regex(stale.stderr, /out of date; run npm run docs:options/);
  const write = run('--write');
  t.is(write.status, 0, write.stderr);
  t.is(fs.readFileSync(file, 'utf8'), README);
  t.is(run('--check').status, 0);
});

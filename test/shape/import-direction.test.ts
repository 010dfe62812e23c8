/**
 * The folder-level import check (scripts/check-layers.ts) on copies of src/ with an import (or a
 * timer in a pure core) planted against the rules: each plant makes it fail and name the file,
 * line and rooms; the unplanted copy passes, so the failure is the plant's. ARCHITECTURE.md states the same order.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { checkLayers, layerOrder, layerReport } from '../../scripts/layers.js';
import { packagePath } from '../../src/lib/package-path.js';
import { tempDir } from '../helpers/tmp.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/check-layers.js', import.meta.url));

/** A copy of src/ (as <tmp>/src) with `plant` appended to each file it names. */
function plantedCopy(t: ExecutionContext, plant: Record<string, string> = {}): string {
  const src = path.join(tempDir(t, 'meshid-layers-'), 'src');
  fs.cpSync(packagePath('src'), src, { recursive: true });
  for (const [file, text] of Object.entries(plant)) {
    fs.mkdirSync(path.dirname(path.join(src, file)), { recursive: true });
    fs.appendFileSync(path.join(src, file), `\n${text}\n`);
  }
  return src;
}

/** The check as `npm test` reports it, run in-process (the command line is tested once, below). */
function check(src: string): { status: number; stdout: string; stderr: string } {
  const r = layerReport(checkLayers(src));
  return r.ok ? { status: 0, stdout: r.text, stderr: '' } : { status: 1, stdout: '', stderr: r.text };
}

function lineOf(src: string, file: string, text: string): number {
  return fs.readFileSync(path.join(src, file), 'utf8').split('\n').indexOf(text) + 1;
}

test('an unplanted copy of src/ passes: every import points down', (t) => {
  const r = check(plantedCopy(t));
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `check-layers: every import points down (${layerOrder()})\n`);
});

test('an upward import (identity importing sds) fails the check command with exit 1, naming the file, the line and both rooms', (t) => {
  const plant = "import type { SdsServer } from '../sds/server.js';";
  const src = plantedCopy(t, { 'identity/pem.ts': plant });
  const r = spawnSync(process.execPath, [SCRIPT, src], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.is(r.stdout, '');
  t.is(
    r.stderr,
    `check-layers: 1 violation of the layer order ${layerOrder()}\n` +
      `  src/identity/pem.ts:${lineOf(src, 'identity/pem.ts', plant)}: identity imports sds (../sds/server.js): sds is above identity; identity may import observability, config, lib, generated\n`,
  );
});

const PLANTS: ReadonlyArray<{ readonly shows: string; readonly plant: Record<string, string>; readonly report: readonly RegExp[] }> = [
  {
    shows: 'observability importing a component (the old metrics.ts importing rotation) fails: observability is a leaf',
    plant: { 'observability/metrics.ts': "import type { SvidMetrics } from '../rotation/metrics.js';" },
    report: [/src\/observability\/metrics\.ts:\d+: observability imports rotation \(\.\.\/rotation\/metrics\.js\): rotation is above observability/],
  },
  {
    shows: 'rotation importing sds fails, and so does a dynamic import() of an upper room',
    plant: {
      'rotation/policy.ts': "export type { SdsServer } from '../sds/server.js';",
      'lib/backoff.ts': "export const later = () => import('../cli/main.js');",
    },
    report: [/^check-layers: 2 violations/, /src\/lib\/backoff\.ts:\d+: lib imports cli \(\.\.\/cli\/main\.js\): cli is above lib; lib may import generated/, /src\/rotation\/policy\.ts:\d+: rotation imports sds/],
  },
  {
    shows: 'rooms on one level do not import each other (authz importing sds fails)',
    plant: { 'authz/cidr.ts': "import type { SdsMetrics } from '../sds/metrics.js';" },
    report: [/authz imports sds \(\.\.\/sds\/metrics\.js\): authz and sds are on one level, and rooms on one level do not import each other/],
  },
  {
    shows: 'production code importing test code fails, and a room missing from the table fails',
    plant: { 'sds/server.ts': "import { FakeClock } from '../../test/helpers/fake-clock.js';", 'newroom/a.ts': 'export const a = 1;' },
    report: [
      /src\/sds\/server\.ts:\d+: imports \.\.\/\.\.\/test\/helpers\/fake-clock\.js, outside src\/: production code imports only src\/ and packages/,
      /src\/newroom\/a\.ts:1: room "newroom" is not in the layer table/,
    ],
  },
  {
    shows: 'a pure core that reads a file or sets a timer fails (identity importing node:fs, the rotation policy calling setTimeout)',
    plant: {
      'identity/pem.ts': "import { readFileSync } from 'node:fs';",
      'rotation/policy.ts': 'export const later = (f: () => void) => setTimeout(f, 1);',
    },
    report: [
      /^check-layers: 2 violations/,
      /src\/identity\/pem\.ts:\d+: imports node:fs: a pure core does no I\/O and sets no timers/,
      /src\/rotation\/policy\.ts:\d+: calls setTimeout: a pure core takes time as input/,
    ],
  },
];

for (const { shows, plant, report } of PLANTS) {
  test(shows, (t) => {
    const r = check(plantedCopy(t, plant));
    t.is(r.status, 1);
    for (const re of report) t.regex(r.stderr, re);
  });
}

test('an import or a timer named only in a comment or a string does not count', (t) => {
  const r = check(
    plantedCopy(t, {
      'lib/backoff.ts': "// import { x } from '../cli/main.js';\nexport const text = \"import { y } from '../cli/main.js'\";",
      'identity/pem.ts': "// setTimeout(() => {}, 1) would not be pure\nexport const note = 'setTimeout(f, 1)';",
    }),
  );
  t.is(r.status, 0, r.stderr);
});

test('ARCHITECTURE.md states the layer order the check enforces', (t) => {
  t.true(fs.readFileSync(packagePath('ARCHITECTURE.md'), 'utf8').includes(layerOrder()), `ARCHITECTURE.md must state: ${layerOrder()}`);
});

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test from 'ava';
import { BUNDLE_NAME, CACHE_SUFFIX, loadBundle } from '../../src/cli/bundle-script.js';

// dist/test/cli -> dist/src/cli, where the build put the bundle and its code cache.
const CLI = fileURLToPath(new URL('../../src/cli/', import.meta.url));
const LOADER = pathToFileURL(path.join(CLI, 'bundle-script.js')).href;

/** Runs `meshid --help` from the bundle in dir; prints whether V8 took the cache. */
function helpFrom(dir: string) {
  const script = `
    import { loadBundle } from ${JSON.stringify(LOADER)};
    const b = loadBundle(${JSON.stringify(dir)});
    process.argv = [process.argv[0], 'meshid', '--help'];
    process.stderr.write('rejected=' + b.script.cachedDataRejected + '\\n');
    b.run();`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
}

test('the build made a code cache that V8 takes for the bundle', (t) => {
  const r = helpFrom(CLI);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /rejected=false/);
  t.regex(r.stdout, /Usage: meshid <command>/);
});

test('a code cache that does not fit is rejected and the bundle still runs; without a bundle there is nothing to load', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bundle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.is(loadBundle(dir), undefined);
  fs.copyFileSync(path.join(CLI, BUNDLE_NAME), path.join(dir, BUNDLE_NAME));
  fs.writeFileSync(path.join(dir, BUNDLE_NAME + CACHE_SUFFIX), Buffer.alloc(4096, 7));
  const r = helpFrom(dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /rejected=true/);
  t.regex(r.stdout, /Usage: meshid <command>/);
});

/**
 * Runs the bundled program (dist/src/cli/meshid.cjs, one CommonJS file made by
 * scripts/bundle-cli.mjs) as a vm.Script with V8's code cache made at build time
 * (meshid.cjs.cache), so a start-up deserialises compiled code instead of compiling 2.5 MB of
 * JavaScript: about 30 ms of every `meshid agent` start (bench:start, A/B). A cache that does not
 * fit (another Node version, other V8 flags) is rejected by V8 and the file compiles as usual.
 *
 * The bundle is ASCII (esbuild escapes everything else, and the build checks), so it is read as
 * latin1, which skips UTF-8 decoding.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

export const BUNDLE_NAME = 'meshid.cjs';
export const CACHE_SUFFIX = '.cache';

export interface Bundle {
  readonly script: vm.Script;
  /** Evaluates the bundle: the program starts. */
  run(): void;
}

/** The bundle in dir compiled (from its code cache when one fits), or undefined without a bundle. */
export function loadBundle(dir: string, options: { useCache?: boolean } = {}): Bundle | undefined {
  const file = path.join(dir, BUNDLE_NAME);
  let source: string;
  try {
    source = fs.readFileSync(file, 'latin1');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let cachedData: Buffer | undefined;
  if (options.useCache !== false) {
    try {
      cachedData = fs.readFileSync(file + CACHE_SUFFIX);
    } catch {
      // No cache: compile as usual.
    }
  }
  // The wrapper CommonJS gives every module, on the first line so that line numbers stay right.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, ...(cachedData ? { cachedData } : {}) });
  return {
    script,
    run() {
      const module = { exports: {} };
      const fn = script.runInThisContext() as (e: object, r: NodeJS.Require, m: object, f: string, d: string) => void;
      fn.call(module.exports, module.exports, createRequire(file), module, file, dir);
    },
  };
}

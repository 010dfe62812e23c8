#!/usr/bin/env node
// @ts-check
/**
 * Build step (run by `npm run build`, after tsc): bundles the meshid program,
 * dist/src/cli/program.js, with our modules and the packages it imports into one CommonJS file,
 * dist/src/cli/meshid.cjs, and makes V8's code cache for it (meshid.cjs.cache), which the
 * executable (dist/src/cli/main.js, src/cli/bundle-script.ts) loads.
 *
 * Why: Node 20 loads ES modules one file at a time (resolve, read, compile, link), and the agent
 * imports about 80 of ours and 230 CommonJS files of grpc-js, protobufjs, pino and prom-client:
 * that was about 100 ms of every start-up (issue 13, bench:start). One file is read once, and
 * with the code cache not compiled at all (about 30 ms more; an ES module cannot use a code cache
 * in Node 20, a vm.Script can). Commands still run their code only when run (esbuild evaluates a
 * dynamically imported module when it is imported).
 *
 * The cache holds what V8 compiled while running `meshid agent --help` here: the CLI, the agent
 * command and the modules they import. It is made by the Node that builds; another Node rejects
 * it and compiles the bundle as usual.
 *
 * What stays outside: what is loaded with createRequire (node-forge's ASN.1 modules, yaml,
 * pino-pretty) and protobufjs's optional `long`, resolved from node_modules at run time as before,
 * and the policy worker (dist/src/authz/policy-worker.js, started by package path). The bundle sits
 * at the same depth below the package root as the modules it bundles (src/lib/package-path.ts).
 * Everything else in dist/ is tsc's output as it was: tests import those modules directly and run
 * the executable whenever they start a meshid process.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'src', 'cli');
const BUNDLE = path.join(CLI, 'meshid.cjs');
const CACHE = `${BUNDLE}.cache`;

// One file rather than chunks split by command: measured faster for the agent (bench:start), as
// V8 compiles the code of commands not run only lazily.
const result = await build({
  entryPoints: [path.join(CLI, 'program.js')],
  outfile: BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  charset: 'ascii',
  // import.meta.url (createRequire, package paths) is the bundle's own URL.
  define: { 'import.meta.url': '__meshidModuleUrl' },
  banner: { js: "const __meshidModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
  metafile: true,
});
fs.chmodSync(path.join(CLI, 'main.js'), 0o755);
const bytes = fs.readFileSync(BUNDLE);
if (bytes.some((b) => b > 0x7f)) throw new Error(`${BUNDLE} is not ASCII: the executable reads it as latin1`);

// The code cache, from a run of the bundle as the executable runs it (same wrapper, same source).
fs.rmSync(CACHE, { force: true });
const loader = pathToFileURL(path.join(CLI, 'bundle-script.js')).href;
const make = `
  import fs from 'node:fs';
  import { loadBundle } from ${JSON.stringify(loader)};
  const bundle = loadBundle(${JSON.stringify(CLI)}, { useCache: false });
  process.argv = [process.argv[0], ${JSON.stringify(path.join(CLI, 'main.js'))}, 'agent', '--help'];
  process.once('exit', () => fs.writeFileSync(${JSON.stringify(CACHE)}, bundle.script.createCachedData()));
  bundle.run();`;
const made = spawnSync(process.execPath, ['--input-type=module', '-e', make], { stdio: ['ignore', 'ignore', 'inherit'] });
if (made.status !== 0 || !fs.existsSync(CACHE)) throw new Error(`making the code cache failed (exit ${made.status})`);
const check = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadBundle } from ${JSON.stringify(loader)}; process.exit(loadBundle(${JSON.stringify(CLI)}).script.cachedDataRejected ? 1 : 0);`]);
if (check.status !== 0) throw new Error('V8 rejects the code cache it just made');

const inputs = Object.keys(result.metafile.inputs).length;
const mb = (file) => (fs.statSync(file).size / 1024 / 1024).toFixed(1);
console.log(`bundled ${inputs} modules into ${path.relative(ROOT, BUNDLE)} (${mb(BUNDLE)} MB), code cache ${mb(CACHE)} MB`);

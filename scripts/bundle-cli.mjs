#!/usr/bin/env node
// @ts-check
/**
 * Build step (run by `npm run build`, after tsc): bundles the meshid executable,
 * dist/src/cli/main.js, with our modules and the packages it imports into that one file, in place.
 *
 * Why: Node 20 loads ES modules one file at a time (resolve, read, compile, link), and the agent
 * imports about 80 of ours and 230 CommonJS files of grpc-js, protobufjs, pino and prom-client:
 * that was about 100 ms of every start-up (issue 13, bench:start). One file is read and compiled
 * once. Commands still load their code only when run (esbuild evaluates a dynamically imported
 * module when it is imported).
 *
 * What stays outside: what is loaded with createRequire (node-forge's ASN.1 modules, yaml,
 * pino-pretty) and protobufjs's optional `long`, resolved from node_modules at run time as before,
 * and the policy worker (dist/src/authz/policy-worker.js, started by package path). The bundle sits
 * at the same depth below the package root as the modules it replaces (src/lib/package-path.ts).
 * Everything else in dist/ is tsc's output as it was: tests import those modules directly and run
 * the bundle whenever they start a meshid process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

// One file rather than chunks split by command: measured faster for the agent (bench:start), as
// V8 compiles the code of commands not run only lazily.
const result = await build({
  entryPoints: [MAIN],
  outfile: MAIN,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS packages call require() for Node's built-ins; an ES module has no require of its own.
  banner: { js: "import { createRequire as __meshidCreateRequire } from 'node:module'; const require = __meshidCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});
fs.chmodSync(MAIN, 0o755);
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`bundled ${inputs} modules into ${path.relative(ROOT, MAIN)} (${(fs.statSync(MAIN).size / 1024 / 1024).toFixed(1)} MB)`);

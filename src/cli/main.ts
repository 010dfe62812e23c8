#!/usr/bin/env node
/** The meshid executable. */
import { errorMessage } from '../lib/errors.js';
import { main } from './router.js';

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`meshid: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  },
);

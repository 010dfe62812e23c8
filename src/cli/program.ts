/**
 * The meshid program: runs the command named on the command line. The executable (main.ts) runs
 * this as the bundle dist/src/cli/meshid.cjs, or as this module where no bundle was built.
 */
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

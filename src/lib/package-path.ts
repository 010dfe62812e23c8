/** Paths of files shipped with meshid (protos, sample policies, the Envoy bootstrap), wherever it is installed. */
import { fileURLToPath } from 'node:url';

// This file compiles to dist/src/lib/package-path.js, and is bundled into dist/src/cli/meshid.cjs
// (scripts/bundle-cli.mjs): both three levels below the package root.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function packagePath(...parts: string[]): string {
  return [ROOT.replace(/\/$/, ''), ...parts].join('/');
}

/**
 * The folder-level import-direction check `npm test` runs (the table is in layers.ts):
 *
 *   node dist/scripts/check-layers.js [SRC_DIR]    exit 0 when every import points down, 1 otherwise
 *
 * SRC_DIR defaults to this checkout's src/ (the TypeScript sources, not dist/).
 */
import { fileURLToPath } from 'node:url';
import { checkLayers, layerReport } from './layers.js';

// Compiled to dist/scripts/check-layers.js: the checkout is two levels up.
const DEFAULT_SRC = fileURLToPath(new URL('../../src', import.meta.url));

function main(argv: readonly string[]): number {
  const src = argv[0] ?? DEFAULT_SRC;
  let violations;
  try {
    violations = checkLayers(src);
  } catch (e) {
    process.stderr.write(`check-layers: cannot read ${src}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
    return 2;
  }
  const report = layerReport(violations);
  (report.ok ? process.stdout : process.stderr).write(report.text);
  return report.ok ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));

/**
 * The README option reference (see options-reference.ts).
 *
 *   node dist/scripts/options-doc.js                   print the section
 *   node dist/scripts/options-doc.js --write [FILE]    rewrite it in FILE (default README.md), in place
 *   node dist/scripts/options-doc.js --check [FILE]    exit 1 when FILE's section is missing or stale
 */
import fs from 'node:fs';
import { currentSection, MarkerError, renderOptionsReference, withSection } from './options-reference.js';

function main(argv: readonly string[]): number {
  const [mode, file = 'README.md'] = argv;
  const section = renderOptionsReference();
  if (mode === undefined) {
    process.stdout.write(`${section}\n`);
    return 0;
  }
  if (mode !== '--write' && mode !== '--check') {
    process.stderr.write('usage: options-doc [--write [FILE] | --check [FILE]]\n');
    return 2;
  }
  let readme: string;
  try {
    readme = fs.readFileSync(file, 'utf8');
  } catch (e) {
    process.stderr.write(`options-doc: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
    return 1;
  }
  try {
    if (mode === '--check') {
      if (currentSection(readme) === section) return 0;
      process.stderr.write(`options-doc: the option reference in ${file} is missing or out of date; run npm run docs:options\n`);
      return 1;
    }
    const { text, appended } = withSection(readme, section);
    if (text !== readme) fs.writeFileSync(file, text);
    process.stderr.write(
      appended ? `options-doc: ${file} had no option markers; appended the reference at the end\n` : `options-doc: ${file} ${text === readme ? 'already up to date' : 'updated'}\n`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof MarkerError)) throw e;
    process.stderr.write(`options-doc: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));

/**
 * The README's table of error codes, generated from the registry in src/lib/errors.ts so the two
 * cannot drift (test/deploy/readme-error-codes.test.ts checks it).
 *
 *   node dist/scripts/error-codes.js            print the section
 *   node dist/scripts/error-codes.js --write    rewrite it in README.md, in place
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../src/lib/errors.js';

export const BEGIN = '<!-- error-codes:begin -->';
export const END = '<!-- error-codes:end -->';

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function renderErrorCodes(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, e]) => `| \`${code}\` | ${e.kind.toUpperCase()} | ${e.exit} | ${cell(e.meaning)} | ${cell(e.action)} |`);
  return [
    BEGIN,
    '<!-- Generated from ERROR_CODES in src/lib/errors.ts by `npm run docs:errors`; edit the registry, not this table. -->',
    '',
    '| code | gRPC status | exit | meaning | what to do |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    END,
  ].join('\n');
}

/** The section as README.md holds it now, or undefined when the markers are missing. */
export function currentErrorCodes(readme: string): string | undefined {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  return a === -1 || b < a ? undefined : readme.slice(a, b + END.length);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const section = renderErrorCodes();
  if (process.argv[2] === '--write') {
    const readme = fs.readFileSync('README.md', 'utf8');
    const current = currentErrorCodes(readme);
    if (current === undefined) throw new Error(`README.md has no ${BEGIN} ... ${END} markers`);
    fs.writeFileSync('README.md', readme.replace(current, section));
  } else {
    process.stdout.write(`${section}\n`);
  }
}

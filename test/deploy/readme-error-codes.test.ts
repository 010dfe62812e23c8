/** README.md's error-code table is generated from the registry; this fails when a code changes without `npm run docs:errors`. */
import fs from 'node:fs';
import test from 'ava';
import { currentErrorCodes, renderErrorCodes } from '../../scripts/error-codes.js';
import { ERROR_CODES } from '../../src/lib/errors.js';

test('README.md holds the error-code table generated from ERROR_CODES, up to date (else: npm run docs:errors)', (t) => {
  const section = currentErrorCodes(fs.readFileSync('README.md', 'utf8'));
  t.truthy(section, 'README.md has no error-codes section');
  t.is(section, renderErrorCodes());
});

test('every code has a meaning and an action, and exits 2 exactly when it is about configuration or unreadable input', (t) => {
  for (const [code, e] of Object.entries(ERROR_CODES)) {
    t.true(e.meaning.length > 10 && e.action.length > 3, code);
    t.regex(code, /^[a-z][a-z0-9_]*$/, code);
  }
  t.is(ERROR_CODES.config_invalid.exit, 2);
  t.is(ERROR_CODES.input_unreadable.exit, 2);
  t.is(ERROR_CODES.svid_untrusted.exit, 1, 'a verdict on readable input');
  t.is(ERROR_CODES.socket_in_use.exit, 1, 'a start-up failure, not a configuration error');
});

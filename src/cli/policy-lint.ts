/**
 * `meshid policy lint DIR`: validates a policy directory exactly as the agent would load it.
 * Exit 0: the set is valid (warnings may be printed); 1: the set has errors and would not be
 * loaded; 2: usage error or the directory cannot be read.
 */
import { opt } from '../config/options.js';
import { readPolicyDir } from '../authz/policy-dir.js';
import { buildPolicySet } from '../authz/policy-set.js';
import { policyLine, rateLimitLine, summarizePolicy } from '../authz/report.js';
import { formatIssue, type PolicyIssue } from '../authz/validate.js';
import { defineCommand } from './command.js';

const EXIT_VALID = 0;
const EXIT_INVALID = 1;
const EXIT_USAGE = 2;

export default defineCommand({
  name: 'policy lint',
  summary: 'validate a directory of Istio AuthorizationPolicy YAML files as the agent would load it',
  positionals: 'DIR',
  details: `Every error names the file, line, document and field. Exit status: 0 valid (warnings may be
printed), 1 invalid (the agent would refuse the whole set), 2 usage error or unreadable directory.`,
  fileAndEnv: false,
  options: {
    json: opt.bool('json', { description: 'print one JSON object instead of text', default: false }),
  },
  async run(loaded, io) {
    if (loaded.positionals.length !== 1) {
      io.stderr.write('meshid policy lint: expected exactly one directory\nRun "meshid policy lint --help" for usage.\n');
      return EXIT_USAGE;
    }
    const dir = loaded.positionals[0]!;
    const read = await readPolicyDir(dir);
    if (!read.ok) {
      io.stderr.write(`meshid policy lint: ${formatIssue(read.error)}\n`);
      return EXIT_USAGE;
    }
    const result = buildPolicySet(read.files, dir);
    const warnings: readonly PolicyIssue[] = result.ok ? result.warnings : [];
    if (loaded.config.json) {
      io.stdout.write(
        `${JSON.stringify({
          valid: result.ok,
          revision: result.ok ? result.set.revision : result.revision,
          files: read.files.map((f) => f.file),
          policies: result.ok ? result.set.policies.map(summarizePolicy) : [],
          rateLimits: result.ok ? result.set.rateLimits.map((l) => ({ id: l.id, ...l.limit, file: l.policy.origin.file, doc: l.policy.origin.doc })) : [],
          errors: result.ok ? [] : result.errors,
          warnings,
        })}\n`,
      );
      return result.ok ? EXIT_VALID : EXIT_INVALID;
    }
    if (!result.ok) {
      for (const e of result.errors) io.stdout.write(`error: ${formatIssue(e)}\n`);
      io.stdout.write(`${dir}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; the agent would not load this policy set\n`);
      return EXIT_INVALID;
    }
    const { set } = result;
    io.stdout.write(`${dir}: ${set.policies.length} polic${set.policies.length === 1 ? 'y' : 'ies'} in ${read.files.length} file${read.files.length === 1 ? '' : 's'}, revision ${set.revision}\n`);
    for (const p of set.policies) io.stdout.write(`  ${policyLine(p)}\n`);
    for (const l of set.rateLimits) io.stdout.write(`  ${rateLimitLine(l)}\n`);
    for (const w of warnings) io.stdout.write(`warning: ${formatIssue(w)}\n`);
    io.stdout.write(`valid${warnings.length > 0 ? ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : ''}\n`);
    return EXIT_VALID;
  },
});

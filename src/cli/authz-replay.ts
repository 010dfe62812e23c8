/**
 * `meshid authz replay --policy-dir CANDIDATE --decisions FILE... [--current-policy-dir DIR]`:
 * decides every recorded decision-log line again under a candidate policy set, with the real
 * engine, and prints each request whose decision, deciding policy or rule would change, grouped by
 * the policy that decides it now, with counts. Exit 0 when nothing changes, 1 when something does,
 * 2 on bad input (an unreadable file, a line that is not a JSON log line, an invalid policy set).
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { opt } from '../config/options.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import type { CompiledPolicySet } from '../authz/compile.js';
import { ESCAPED_SLASHES } from '../authz/paths.js';
import { readPolicyDir } from '../authz/policy-dir.js';
import { buildPolicySet } from '../authz/policy-set.js';
import { changeGroup, type Decided, describeDecided, headersRead, readDecisionLine, type RecordedDecision, replayOne } from '../authz/replay.js';
import { formatIssue } from '../authz/validate.js';
import { errorMessage } from '../lib/errors.js';
import { defineCommand } from './command.js';

const EXIT_UNCHANGED = 0;
const EXIT_CHANGED = 1;
const EXIT_UNUSABLE = 2;
/** Longer lines are not decision lines meshid writes (every value is capped). */
const MAX_LINE = 1024 * 1024;

interface Change {
  readonly r: RecordedDecision;
  readonly before: Decided;
  readonly after: Decided;
}

export default defineCommand({
  name: 'authz replay',
  summary: 'decide recorded decision-log lines again under a candidate policy directory and print what would change',
  details: `Reads the agent's decision log (JSON lines; other components' lines are skipped) and decides each
request again with the candidate policies. Compared with the recorded decision, or with what
--current-policy-dir decides when given (so lines recorded under older revisions compare fairly).
A request whose header value was logged hashed, when a policy of either set matches on that header,
or whose value the log cut short, is counted undecidable, with the reason, never guessed; name such
headers with the agent's --authz-decision-log-headers to replay them. Rate limits are not replayed:
a rate-limited request counts as allowed by the policy that allowed it.
Exit status: 0 nothing changes, 1 something changes, 2 bad input.`,
  fileAndEnv: false,
  options: {
    policyDir: opt.string('policy-dir', { description: 'the candidate directory of AuthorizationPolicy YAML files', metavar: 'CANDIDATE', required: true }),
    decisions: opt.list('decisions', { description: 'decision-log files (the agent\'s JSON log lines); repeat or use commas; - for stdin', metavar: 'FILE', required: true }),
    currentPolicyDir: opt.string('current-policy-dir', { description: 'compare with what this directory decides instead of the recorded decisions', metavar: 'DIR' }),
    trustDomain: opt.checked('trust-domain', { description: 'the agent\'s trust domain (principals naming cluster.local stand for it)', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
    escapedSlashes: opt.oneOf('authz-escaped-slashes', ESCAPED_SLASHES, { description: 'as the agent\'s --authz-escaped-slashes', default: 'reject' }),
  },
  async run({ config }, io) {
    const load = async (dir: string, role: string): Promise<CompiledPolicySet | undefined> => {
      const read = await readPolicyDir(dir);
      if (!read.ok) {
        io.stderr.write(`meshid authz replay: ${role}: ${formatIssue(read.error)}\n`);
        return undefined;
      }
      const built = buildPolicySet(read.files, dir, undefined, { trustDomain: config.trustDomain, escapedSlashes: config.escapedSlashes });
      if (!built.ok) {
        for (const e of built.errors) io.stderr.write(`error: ${formatIssue(e)}\n`);
        io.stderr.write(`meshid authz replay: ${role} ${dir}: ${built.errors.length} error${built.errors.length === 1 ? '' : 's'}\n`);
        return undefined;
      }
      return built.set;
    };
    const candidate = await load(config.policyDir, 'candidate');
    if (!candidate) return EXIT_UNUSABLE;
    let current: CompiledPolicySet | undefined;
    if (config.currentPolicyDir) {
      current = await load(config.currentPolicyDir, 'current');
      if (!current) return EXIT_UNUSABLE;
    }
    const readBy = new Set([...headersRead(candidate), ...(current ? headersRead(current) : [])]);

    let read = 0;
    let unchanged = 0;
    let skipped = 0;
    const changes: Change[] = [];
    const undecidable: { r: RecordedDecision; why: string }[] = [];
    for (const file of config.decisions) {
      let lineNo = 0;
      try {
        const input = file === '-' ? process.stdin : fs.createReadStream(file, 'utf8');
        const lines = readline.createInterface({ input, crlfDelay: Infinity });
        for await (const text of lines) {
          lineNo++;
          if (text.trim() === '') continue;
          if (text.length > MAX_LINE) {
            io.stderr.write(`meshid authz replay: ${file}:${lineNo}: a line of ${text.length} characters is not a decision line\n`);
            return EXIT_UNUSABLE;
          }
          const line = readDecisionLine(text);
          if (line.kind === 'bad') {
            io.stderr.write(`meshid authz replay: ${file}:${lineNo}: ${line.why}\n`);
            return EXIT_UNUSABLE;
          }
          if (line.kind === 'skip') {
            if (line.why !== 'not a decision line') skipped++;
            continue;
          }
          read++;
          const result = replayOne(line.decision, candidate, current, readBy);
          if (result.kind === 'unchanged') unchanged++;
          else if (result.kind === 'changed') changes.push({ r: line.decision, before: result.before, after: result.after });
          else undecidable.push({ r: line.decision, why: result.why });
        }
      } catch (e) {
        io.stderr.write(`meshid authz replay: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}\n`);
        return EXIT_UNUSABLE;
      }
    }

    const groups = new Map<string, Change[]>();
    for (const c of changes) {
      const g = changeGroup(c.before, c.after);
      groups.set(g, [...(groups.get(g) ?? []), c]);
    }
    const what = (r: RecordedDecision) => `${r.decisionId} ${r.input.method ?? '-'} ${r.input.host ?? '-'}${r.input.path ?? ''} from ${r.input.principal ?? 'no principal'}`;
    for (const [policy, list] of [...groups].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1))) {
      io.stdout.write(`${policy}: ${list.length} request${list.length === 1 ? '' : 's'} change\n`);
      for (const c of list) io.stdout.write(`  ${what(c.r)}: ${describeDecided(c.before)} -> ${describeDecided(c.after)}\n`);
    }
    if (undecidable.length > 0) {
      io.stdout.write(`undecidable: ${undecidable.length} request${undecidable.length === 1 ? '' : 's'}\n`);
      for (const u of undecidable) io.stdout.write(`  ${what(u.r)}: ${u.why}\n`);
    }
    io.stdout.write(`${read} decisions replayed against ${candidate.revision}: ${changes.length} changed, ${unchanged} unchanged, ${undecidable.length} undecidable; ${skipped} skipped (not decided by a policy)\n`);
    return changes.length > 0 ? EXIT_CHANGED : EXIT_UNCHANGED;
  },
});

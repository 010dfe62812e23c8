/**
 * The README's option reference, generated from the option specs of the long-running commands,
 * so that the README, --help and the config loader cannot disagree. The section lives between
 * two markers in README.md; `npm run docs:options` rewrites it and a test fails when it is stale.
 */
import agent from '../src/cli/agent.js';
import ca from '../src/cli/ca.js';
import { type Command, defaultText, flagUsage } from '../src/cli/command.js';
import dev from '../src/cli/dev.js';
import { envName, type OptionSpec } from '../src/config/options.js';
import { packagePath } from '../src/lib/package-path.js';

export const BEGIN_MARKER = '<!-- options:begin -->';
export const END_MARKER = '<!-- options:end -->';

export const DOCUMENTED_COMMANDS: readonly Command[] = [agent, ca, dev] as readonly Command[];

/** Text for a Markdown table cell: no pipes, no raw HTML, no stray emphasis or code. */
function cell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\*/g, '\\*').replace(/`/g, '\\`').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A code span inside a table cell (pipes still need escaping there). */
function code(s: string): string {
  return `\`${s.replace(/\|/g, '\\|')}\``;
}

/**
 * A default as the reader's install will see it: paths inside the meshid package (dev's sample
 * policies) are shown relative to the package, never as this checkout's absolute path.
 */
function defaultCell(spec: OptionSpec<unknown>, packageRoot: string): string {
  if (spec.required) return 'required';
  const text = defaultText(spec);
  if (text === undefined || (Array.isArray(spec.default) && spec.default.length === 0)) return '';
  if (text.startsWith(`${packageRoot}/`)) return `${code(text.slice(packageRoot.length + 1))} in the meshid package`;
  return code(text);
}

export function renderCommandTable(command: Command, packageRoot: string = packagePath()): string {
  const readsFileAndEnv = command.fileAndEnv !== false;
  const rows = Object.values(command.options).map((spec) =>
    [
      code(flagUsage(spec)),
      readsFileAndEnv ? code(spec.flag) : '',
      readsFileAndEnv ? code(envName(spec.flag)) : '',
      defaultCell(spec, packageRoot),
      cell(spec.description) + (spec.repeatable ? ' (repeatable; a list in YAML, commas in the environment)' : '') + (spec.secret ? ' (secret: redacted by --print-config)' : ''),
    ].join(' | '),
  );
  return [
    `### \`meshid ${command.name}\``,
    '',
    `${cell(command.summary.charAt(0).toUpperCase() + command.summary.slice(1))}.`,
    '',
    '| Flag | YAML key | Environment | Default | Description |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}

/** The whole section, markers included. */
export function renderOptionsReference(commands: readonly Command[] = DOCUMENTED_COMMANDS, packageRoot: string = packagePath()): string {
  return [
    BEGIN_MARKER,
    '<!-- Generated from the option specs by `npm run docs:options`; edit the specs, not this section. -->',
    '',
    'Each setting is a flag, a key of the YAML file named by `--config FILE` (or `MESHID_CONFIG`), and a `MESHID_*` ' +
      'environment variable. Flags override the environment, which overrides the file, which overrides the defaults. ' +
      '`--print-config` prints the effective configuration with its sources, secrets redacted, and exits.',
    '',
    ...commands.flatMap((c) => [renderCommandTable(c, packageRoot), '']),
    END_MARKER,
  ].join('\n');
}

export class MarkerError extends Error {}

/** Where the section is: [start of BEGIN, end of END], or undefined when README has no markers. */
function sectionBounds(readme: string): [number, number] | undefined {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin === -1 && end === -1) return undefined;
  if (begin === -1 || end === -1 || end < begin) throw new MarkerError(`README.md must hold ${BEGIN_MARKER} followed by ${END_MARKER}`);
  if (readme.indexOf(BEGIN_MARKER, begin + 1) !== -1 || readme.indexOf(END_MARKER, end + 1) !== -1) {
    throw new MarkerError(`README.md holds ${BEGIN_MARKER} or ${END_MARKER} more than once`);
  }
  return [begin, end + END_MARKER.length];
}

/** The section as it is in README.md, markers included; undefined when there are no markers. */
export function currentSection(readme: string): string | undefined {
  const b = sectionBounds(readme);
  return b && readme.slice(b[0], b[1]);
}

/** README.md with the section replaced by `section`, or appended under a heading when there are no markers yet. */
export function withSection(readme: string, section: string): { text: string; appended: boolean } {
  const b = sectionBounds(readme);
  if (!b) return { text: `${readme.replace(/\n*$/, '')}\n\n## Configuration reference\n\n${section}\n`, appended: true };
  return { text: readme.slice(0, b[0]) + section + readme.slice(b[1]), appended: false };
}

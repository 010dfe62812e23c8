/**
 * Builds one frozen, validated config from, in rising precedence: defaults, a YAML file
 * (--config / MESHID_CONFIG), MESHID_* environment variables and command-line flags. Every problem
 * names the key and where the bad value came from; all problems are reported at once.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { closest } from '../lib/edit-distance.js';
import { configError, isMeshidError } from '../lib/errors.js';
import { type ConfigOf, envName, type OptionSpec, type OptionSpecs } from './options.js';

// yaml loads when a config file is read or rendered, not for every command start (it is most of the
// CLI's own module loading).
const require = createRequire(import.meta.url);
const yaml = (): typeof import('yaml') => require('yaml') as typeof import('yaml');

export type ValueSource =
  | { readonly kind: 'default' }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'flag'; readonly name: string };

export function sourceText(s: ValueSource): string {
  switch (s.kind) {
    case 'default':
      return 'default';
    case 'file':
      return `file ${s.path}`;
    case 'env':
      return `env ${s.name}`;
    case 'flag':
      return `flag --${s.name}`;
  }
}

/**
 * A check across settings, run once each setting has parsed on its own, so a start-up never gets
 * past configuration with a combination that cannot work. Pure: no I/O.
 */
export interface TypedRule<C> {
  /** The settings the rule reads; the problem names each with its source. Skipped when one failed to parse. */
  readonly keys: readonly (keyof C & string)[];
  /** A warning: the combination works, but a setting the user gave has no effect. The command still runs. */
  readonly warning?: boolean;
  /** The problem in words, or undefined. given(key): set by a file, env or flag, not by a default. */
  check(config: C, given: (key: keyof C & string) => boolean): string | undefined;
}

/** A rule with its config type erased, so that one command's schema can hold every subsystem's rules. */
export interface ConfigRule {
  readonly keys: readonly string[];
  readonly warning?: boolean;
  check(config: unknown, given: (key: string) => boolean): string | undefined;
}

/** Declares a rule against a subsystem's config type; loadConfig checks that its keys are options of the command. */
export function rule<C>(r: TypedRule<C>): ConfigRule {
  return r as unknown as ConfigRule;
}

export interface LoadedConfig<S extends OptionSpecs> {
  readonly config: ConfigOf<S>;
  readonly sources: Readonly<Record<keyof S, ValueSource | undefined>>;
  readonly positionals: readonly string[];
  readonly help: boolean;
  readonly printConfig: boolean;
  /** Settings that have no effect in this combination (from warning rules), each naming its source. */
  readonly warnings: readonly string[];
}

export interface LoadOptions {
  readonly argv: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly readFile?: (path: string) => string;
  /** Whether this command reads --config / MESHID_* (long-running commands do; one-shot tools need not). */
  readonly fileAndEnv?: boolean;
  /** Cross-field rules of the command's schema. */
  readonly rules?: readonly ConfigRule[];
}

const CONFIG_FLAG = 'config';
const PRINT_FLAG = 'print-config';

export function loadConfig<S extends OptionSpecs>(specs: S, options: LoadOptions): LoadedConfig<S> {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? ((p: string) => fs.readFileSync(p, 'utf8'));
  const byFlag = new Map<string, [keyof S & string, OptionSpec<unknown>]>();
  for (const [key, spec] of Object.entries(specs)) byFlag.set(spec.flag, [key, spec]);

  const problems: string[] = [];
  const invalid = new Set<string>();
  const values: Record<string, unknown> = {};
  const sources: Record<string, ValueSource | undefined> = {};
  const set = (key: string, spec: OptionSpec<unknown>, raw: unknown, source: ValueSource) => {
    try {
      const parsed = spec.repeatable && Array.isArray(values[key]) && source.kind === 'flag' && sources[key]?.kind === 'flag'
        ? Object.freeze([...(values[key] as unknown[]), ...(spec.parse(raw) as unknown[])])
        : spec.parse(raw);
      values[key] = parsed;
      sources[key] = source;
    } catch (e) {
      if (!isMeshidError(e) || e.code !== 'config_value_invalid') throw e;
      problems.push(`${spec.flag} (${sourceText(source)}): ${e.message}`);
      invalid.add(key);
    }
  };

  // 1. flags are parsed first (to find --config and --help) but applied last.
  const fileAndEnv = options.fileAndEnv !== false;
  const flags = parseArgv(options.argv, byFlag, problems, fileAndEnv);
  // --help answers whatever else is wrong: a bad environment must not hide the usage text.
  if (flags.help) {
    return { config: Object.freeze({}) as ConfigOf<S>, sources: Object.freeze({}) as Record<keyof S, undefined>, positionals: [], help: true, printConfig: false, warnings: [] };
  }

  // 2. defaults
  for (const [key, spec] of Object.entries(specs)) {
    if (spec.default !== undefined) {
      values[key] = spec.default;
      sources[key] = { kind: 'default' };
    }
  }

  if (fileAndEnv) {
    // 3. YAML file
    const configPath = flags.config ?? env.MESHID_CONFIG;
    if (configPath) {
      for (const [k, raw] of readYamlFile(configPath, readFile, problems)) {
        const entry = byFlag.get(k);
        if (!entry) {
          problems.push(`${k} (file ${configPath}): unknown setting${suggest(k, byFlag)}`);
          continue;
        }
        set(entry[0], entry[1], raw, { kind: 'file', path: configPath });
      }
    }
    // 4. environment
    for (const [key, spec] of Object.entries(specs)) {
      const name = envName(spec.flag);
      const raw = env[name];
      if (raw !== undefined) set(key, spec, raw, { kind: 'env', name });
    }
  }

  // 5. flags
  for (const [flag, raw] of flags.values) {
    const [key, spec] = byFlag.get(flag)!;
    set(key, spec, raw, { kind: 'flag', name: flag });
  }

  for (const [key, spec] of Object.entries(specs)) {
    if (spec.required && values[key] === undefined && !invalid.has(key)) {
      problems.push(`${spec.flag}: required (flag --${spec.flag}${fileAndEnv ? `, env ${envName(spec.flag)} or the config file` : ''})`);
    }
  }
  const warnings: string[] = [];
  const parsedCleanly = problems.length === 0;
  for (const r of options.rules ?? []) {
    // A rule over a value that failed to parse would judge the default in its place.
    if (r.keys.some((k) => invalid.has(k) || (specOf(specs, k).required && values[k] === undefined))) continue;
    // Warnings only matter for a configuration that will run.
    if (r.warning && !parsedCleanly) continue;
    const given = (k: string) => sources[k] !== undefined && sources[k]!.kind !== 'default';
    const problem = r.check(values, given);
    if (problem === undefined) continue;
    const named = r.keys.map((k) => `${specOf(specs, k).flag} (${sources[k] ? sourceText(sources[k]!) : 'unset'})`).join(', ');
    (r.warning ? warnings : problems).push(`${named}: ${problem}`);
  }
  if (problems.length > 0) throw configError(problems);
  return {
    config: Object.freeze(values) as ConfigOf<S>,
    sources: Object.freeze(sources) as Record<keyof S, ValueSource | undefined>,
    positionals: Object.freeze(flags.positionals),
    help: false,
    printConfig: flags.printConfig,
    warnings: Object.freeze(warnings),
  };
}

function specOf(specs: OptionSpecs, key: string): OptionSpec<unknown> {
  const found = specs[key];
  if (!found) throw new Error(`config rule names ${key}, which is not an option of this command`);
  return found;
}

interface ParsedArgv {
  values: Array<[string, string | boolean]>;
  positionals: string[];
  help: boolean;
  printConfig: boolean;
  config?: string;
}

/** fileAndEnv: whether --config and --print-config exist for this command (one-shot tools have neither). */
function parseArgv(argv: readonly string[], byFlag: Map<string, [string, OptionSpec<unknown>]>, problems: string[], fileAndEnv: boolean): ParsedArgv {
  const out: ParsedArgv = { values: [], positionals: [], help: false, printConfig: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      out.help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-') problems.push(`${arg}: unknown flag (flags are written --name)`);
      else out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (fileAndEnv && name === PRINT_FLAG) {
      out.printConfig = true;
      continue;
    }
    const takeValue = (): string | undefined => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        problems.push(`--${name}: needs a value`);
        return undefined;
      }
      i++;
      return next;
    };
    if (fileAndEnv && name === CONFIG_FLAG) {
      const v = takeValue();
      if (v !== undefined) out.config = v;
      continue;
    }
    const entry = byFlag.get(name);
    if (!entry) {
      problems.push(`--${name}: unknown flag${suggest(name, byFlag, '--')}`);
      continue;
    }
    if (entry[1].isSwitch) {
      out.values.push([name, inline ?? true]);
      continue;
    }
    const v = takeValue();
    if (v !== undefined) out.values.push([name, v]);
  }
  return out;
}

function readYamlFile(path: string, readFile: (p: string) => string, problems: string[]): Array<[string, unknown]> {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    problems.push(`config (file ${path}): cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return [];
  }
  let doc: unknown;
  try {
    doc = yaml().parse(text);
  } catch (e) {
    problems.push(`config (file ${path}): not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    return [];
  }
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`config (file ${path}): expected a mapping of setting: value`);
    return [];
  }
  return Object.entries(doc as Record<string, unknown>);
}

function suggest(name: string, byFlag: Map<string, unknown>, prefix = ''): string {
  const best = closest(name, byFlag.keys());
  return best ? ` (did you mean ${prefix}${best}?)` : '';
}

/** The effective configuration with secrets redacted, one "key: value  # source" per line. */
export function renderConfig<S extends OptionSpecs>(specs: S, loaded: LoadedConfig<S>): string {
  const lines: string[] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const value = (loaded.config as Record<string, unknown>)[key];
    const source = loaded.sources[key as keyof S];
    const shown = value === undefined ? null : spec.secret ? '[redacted]' : spec.format ? spec.format(value) : value;
    lines.push(`${yaml().stringify({ [spec.flag]: shown }).trimEnd()}  # ${source ? sourceText(source) : 'unset'}`);
  }
  return `${lines.join('\n')}\n`;
}

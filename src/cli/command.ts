/** The shape of a meshid command, and its generated --help. */
import { type ConfigRule, type LoadedConfig, loadConfig, renderConfig, sourceText } from '../config/load.js';
import { isMeshidError, MeshidError } from '../lib/errors.js';
import { envName, type OptionSpec, type OptionSpecs } from '../config/options.js';

export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

export interface Command<S extends OptionSpecs = OptionSpecs> {
  /** As typed: "ca", "svid verify". */
  readonly name: string;
  readonly summary: string;
  /** Positional arguments for the usage line, e.g. "LEAF.pem". */
  readonly positionals?: string;
  readonly details?: string;
  readonly options: S;
  /** Checks across options (from each subsystem's option specs), run before the command does anything. */
  readonly rules?: readonly ConfigRule[];
  /** Long-running commands read --config and MESHID_*; one-shot tools take flags only. */
  readonly fileAndEnv?: boolean;
  /** Returns the process exit code. */
  run(loaded: LoadedConfig<S>, io: CommandIO): Promise<number>;
}

export function defineCommand<S extends OptionSpecs>(command: Command<S>): Command<S> {
  return command;
}

/** Parses argv for the command and runs it, handling --help and --print-config. */
export async function invoke<S extends OptionSpecs>(command: Command<S>, argv: readonly string[], io: CommandIO): Promise<number> {
  const loaded = loadConfig(command.options, { argv, env: io.env, fileAndEnv: command.fileAndEnv !== false, ...(command.rules ? { rules: command.rules } : {}) });
  if (loaded.help) {
    io.stdout.write(renderHelp(command));
    return 0;
  }
  // A stray word (a forgotten "--") must not be dropped silently.
  if (!command.positionals && loaded.positionals.length > 0) {
    throw new MeshidError('usage', `unexpected argument ${JSON.stringify(loaded.positionals[0])} (flags are written --name)`);
  }
  for (const w of loaded.warnings) io.stderr.write(`meshid ${command.name}: warning: ${w}\n`);
  if (loaded.printConfig) {
    io.stdout.write(renderConfig(command.options, loaded));
    return 0;
  }
  try {
    return await command.run(loaded, io);
  } catch (e) {
    throw isMeshidError(e) ? namingSource(e, command.options, loaded) : e;
  }
}

/** A start-up error about one setting (a file it names cannot be read), prefixed with that setting and where its value came from. */
function namingSource<S extends OptionSpecs>(e: MeshidError, specs: S, loaded: LoadedConfig<S>): MeshidError {
  const spec = e.key === undefined ? undefined : specs[e.key];
  if (!spec) return e;
  const source = loaded.sources[e.key as keyof S];
  return new MeshidError(e.code, `${spec.flag} (${source ? sourceText(source) : 'unset'}): ${e.message}`, { cause: e.cause });
}

/** An option's default as --help (and the README's reference) show it; undefined when there is none to show. */
export function defaultText(spec: OptionSpec<unknown>): string | undefined {
  if (spec.default === undefined || spec.secret) return undefined;
  const shown = spec.format ? spec.format(spec.default) : spec.default;
  return Array.isArray(shown) ? shown.join(',') || '(none)' : String(shown);
}

/** "--flag METAVAR", or "--flag" for a switch. */
export function flagUsage(spec: OptionSpec<unknown>): string {
  return `--${spec.flag}${spec.isSwitch ? '' : ` ${spec.metavar ?? 'VALUE'}`}`;
}

export function renderHelp(command: Command): string {
  const lines = [`Usage: meshid ${command.name} [flags]${command.positionals ? ` ${command.positionals}` : ''}`, '', command.summary];
  if (command.details) lines.push('', command.details.trim());
  lines.push('', 'Flags:');
  const rows: Array<[string, string]> = [];
  for (const spec of Object.values(command.options)) {
    const left = flagUsage(spec);
    const notes: string[] = [];
    if (spec.required) notes.push('required');
    const shown = defaultText(spec);
    if (shown !== undefined) notes.push(`default ${shown}`);
    if (spec.repeatable) notes.push('repeatable');
    if (command.fileAndEnv !== false) notes.push(`env ${envName(spec.flag)}`);
    rows.push([left, `${spec.description}${notes.length ? ` (${notes.join('; ')})` : ''}`]);
  }
  if (command.fileAndEnv !== false) {
    rows.push(['--config FILE', 'YAML file of flag-name: value settings (env MESHID_CONFIG); flags override env, env overrides the file']);
    rows.push(['--print-config', 'print the effective configuration, secrets redacted, and exit']);
  }
  rows.push(['-h, --help', 'show this help']);
  const width = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  for (const [left, right] of rows) {
    lines.push(left.length + 2 > width ? `  ${left}\n  ${' '.repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`);
  }
  return `${lines.join('\n')}\n`;
}

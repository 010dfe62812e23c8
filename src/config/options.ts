/**
 * Option specs: one declaration per setting gives its flag, YAML key, environment variable,
 * parser, default and help text, so --help, --print-config, the README table and validation can
 * never disagree. Pure: no I/O.
 */
import { errorMessage, isMeshidError, MeshidError } from '../lib/errors.js';
export interface OptionSpec<T> {
  /** Flag name without dashes; also the YAML key. Environment: MESHID_ + upper snake case. */
  readonly flag: string;
  readonly description: string;
  /** Placeholder in help text, e.g. HOST:PORT. */
  readonly metavar?: string;
  readonly default?: T;
  readonly required?: boolean;
  /** Shown as [redacted] by --print-config. */
  readonly secret?: boolean;
  /** A flag that takes no value (booleans). */
  readonly isSwitch?: boolean;
  /** May be given several times on the command line; file values may be YAML lists. */
  readonly repeatable?: boolean;
  /** Turns one raw value (string from flag/env, or YAML value) into T; throws valueError(). */
  parse(raw: unknown): T;
  /** How --print-config and --help show a value (default: as is). */
  format?(value: T): unknown;
}

/** A value that does not parse; loadConfig turns it into a problem naming the key and its source. */
export function valueError(message: string): MeshidError {
  return new MeshidError('config_value_invalid', message);
}

function text(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  throw valueError(`expected a string, got ${describe(raw)}`);
}

function describe(raw: unknown): string {
  if (Array.isArray(raw)) return 'a list';
  if (raw === null) return 'null';
  return typeof raw === 'object' ? 'a mapping' : JSON.stringify(raw);
}

type Common<T> = Omit<OptionSpec<T>, 'parse' | 'flag' | 'isSwitch' | 'format'>;
interface Bounds {
  readonly min?: number;
  readonly max?: number;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "30s", "5m", "1h", "7d" (or a sequence like "1h30m") into milliseconds. */
export function parseDuration(s: string): number {
  // A bare 0 needs no unit (as in Go's time.ParseDuration): "--policy-resync 0" means "never".
  if (s.trim() === '0') return 0;
  const parts = s.trim().match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g);
  if (!parts || parts.join('') !== s.trim()) {
    throw valueError(`expected a duration like 500ms, 30s, 5m, 1h or 7d, got ${JSON.stringify(s)}`);
  }
  return Math.round(parts.reduce((sum, p) => {
    const m = DURATION_RE.exec(p)!;
    return sum + Number(m[1]) * UNIT_MS[m[2]!]!;
  }, 0));
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export function parseHostPort(s: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw valueError(`expected HOST:PORT (IPv6 as [::1]:PORT), got ${JSON.stringify(s)}`);
  return { host: m[1] ?? m[2]!, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** Parses a Unix file mode written in octal: "0600", "600" or "0o600". */
export function parseFileMode(s: string): number {
  const m = /^(?:0o|0)?([0-7]{3})$/.exec(s.trim());
  if (!m) throw valueError(`expected an octal file mode like 0600 or 0660, got ${JSON.stringify(s)}`);
  const mode = parseInt(m[1]!, 8);
  // The agent must be able to keep using its own socket; a mode without owner read+write is a typo.
  if ((mode & 0o600) !== 0o600) throw valueError(`mode ${formatFileMode(mode)} must give the owner read and write (0600 at least)`);
  return mode;
}

export function formatFileMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

export const opt = {
  string: <const C extends Common<string>>(flag: string, c: C): OptionSpec<string> & C => ({
    ...c,
    flag,
    parse: (raw) => {
      const s = text(raw);
      if (s === '') throw valueError('must not be empty');
      return s;
    },
  }),
  /** A string checked by a validator that throws with a specific message. */
  checked: <T, const C extends Common<T> = Common<T>>(flag: string, c: C, check: (s: string) => T): OptionSpec<T> & C => ({
    ...c,
    flag,
    parse: (raw) => {
      try {
        return check(text(raw));
      } catch (e) {
        throw isMeshidError(e) && e.code === 'config_value_invalid' ? e : valueError(errorMessage(e));
      }
    },
  }),
  number: <const C extends Common<number> & Bounds>(flag: string, c: C): OptionSpec<number> & C => ({
    ...c,
    flag,
    parse: (raw) => {
      const s = text(raw);
      const n = Number(s);
      if (s.trim() === '' || !Number.isFinite(n)) throw valueError(`expected a number, got ${JSON.stringify(s)}`);
      return bounded(n, c.min, c.max);
    },
  }),
  duration: <const C extends Common<number> & Bounds>(flag: string, c: C): OptionSpec<number> & C => ({
    ...c,
    metavar: c.metavar ?? 'DURATION',
    flag,
    parse: (raw) => bounded(parseDuration(text(raw)), c.min, c.max, formatDuration),
    format: formatDuration,
  }),
  bool: <const C extends Common<boolean>>(flag: string, c: C): OptionSpec<boolean> & C => ({
    ...c,
    flag,
    isSwitch: true,
    parse: (raw) => {
      if (typeof raw === 'boolean') return raw;
      const s = text(raw).toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(s)) return true;
      if (['false', '0', 'no', 'off'].includes(s)) return false;
      throw valueError(`expected true or false, got ${JSON.stringify(s)}`);
    },
  }),
  oneOf: <const V extends string, const C extends Common<V> = Common<V>>(flag: string, values: readonly V[], c: C): OptionSpec<V> & C => ({
    ...c,
    metavar: c.metavar ?? values.join('|'),
    flag,
    parse: (raw) => {
      const s = text(raw);
      if (!(values as readonly string[]).includes(s)) {
        throw valueError(`expected one of ${values.join(', ')}, got ${JSON.stringify(s)}`);
      }
      return s as V;
    },
  }),
  hostPort: <const C extends Common<HostPort>>(flag: string, c: C): OptionSpec<HostPort> & C => ({
    ...c,
    metavar: c.metavar ?? 'HOST:PORT',
    flag,
    parse: (raw) => parseHostPort(text(raw)),
    format: formatHostPort,
  }),
  /** A Unix file mode in octal ("0600"). */
  fileMode: <const C extends Common<number>>(flag: string, c: C): OptionSpec<number> & C => ({
    ...c,
    metavar: c.metavar ?? 'MODE',
    flag,
    parse: (raw) => parseFileMode(text(raw)),
    format: formatFileMode,
  }),
  /** A list: repeat the flag, or use commas in a flag/env value, or a YAML list. */
  list: <const C extends Common<readonly string[]>>(flag: string, c: C): OptionSpec<readonly string[]> & C => ({
    ...c,
    flag,
    repeatable: true,
    parse: (raw) => {
      const items = Array.isArray(raw) ? raw.map(text) : text(raw).split(',');
      return Object.freeze(items.map((s) => s.trim()).filter((s) => s !== ''));
    },
  }),
};

function bounded(n: number, min?: number, max?: number, fmt: (n: number) => string = String): number {
  if (min !== undefined && n < min) throw valueError(`must be at least ${fmt(min)}, got ${fmt(n)}`);
  if (max !== undefined && n > max) throw valueError(`must be at most ${fmt(max)}, got ${fmt(n)}`);
  return n;
}

export type OptionSpecs = Record<string, OptionSpec<unknown>>;

/** The typed config object a set of specs produces. Options without default/required may be absent. */
export type ConfigOf<S extends OptionSpecs> = {
  readonly [K in keyof S]: S[K] extends OptionSpec<infer T>
    ? S[K] extends { default: unknown } | { required: true }
      ? T
      : T | undefined
    : never;
};

export function envName(flag: string): string {
  return `MESHID_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * pino logging: JSON lines, or human-readable output when stdout is a terminal. Subsystems take a
 * child logger (`logger.child({ component: 'sds' })`). Secrets never go into log fields: the
 * redact paths below are a last line of defence, not the mechanism.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { createRequire } from 'node:module';
import type { PinoPretty as PinoPrettyFn } from 'pino-pretty';
import { opt } from '../config/options.js';
import { terminalLine } from './terminal-line.js';

const require = createRequire(import.meta.url);

export type { Logger };

export interface LoggerConfig {
  level?: string;
  /** true: pretty; false: JSON; undefined: pretty only when stdout is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go (default stdout); tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}

// Top-level keys only: wildcard paths ("*.token") are checked against every field of every line
// and doubled the cost of a 16-field line (measured on the ext_authz decision log).
const REDACT = ['token', 'authorization', 'privateKey', 'private_key', 'key'];
const REDACTED = new Set(REDACT);

/**
 * Lines buffered for stdout at most (bytes). The write to stdout is asynchronous and batched: a
 * line goes into SonicBoom's buffer, which is written when it holds WRITE_BATCH_BYTES or every
 * FLUSH_EVERY_MS, so under load a hundred lines share one syscall and none is written on the
 * request path. (Unbatched, an asynchronous write per line costs more than the synchronous one:
 * a thread-pool round trip each; measured with bench:authz-profile.) Past this
 * bound (stdout not keeping up) lines are dropped and counted, not buffered without end; on exit
 * (clean shutdown, process.exit) pino flushes what is buffered synchronously.
 */
export const STDOUT_BUFFER_BYTES = 16 * 1024 * 1024;
const WRITE_BATCH_BYTES = 8 * 1024;
const FLUSH_EVERY_MS = 100;

let droppedLines = 0;
/** Log lines dropped because the stdout buffer was full (meshid_log_lines_dropped_total). */
export function droppedLogLines(): number {
  return droppedLines;
}

/** The ISO timestamp field, rebuilt once per millisecond rather than once per line. */
let stampMs = -1;
let stamp = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/** An asynchronous, bounded destination (stdout by default); dropped lines are counted. */
export function bufferedDestination(options: { dest?: number | string; maxLength?: number } = {}): NodeJS.WritableStream & { flushSync(): void } {
  const dest = pino.destination({
    dest: options.dest ?? 1,
    sync: false,
    minLength: WRITE_BATCH_BYTES,
    periodicFlush: FLUSH_EVERY_MS,
    maxLength: options.maxLength ?? STDOUT_BUFFER_BYTES,
  });
  dest.on('drop', (data: string) => {
    let n = 0;
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++;
    droppedLines += Math.max(1, n);
  });
  return dest as unknown as NodeJS.WritableStream & { flushSync(): void };
}

export function createLogger(config: LoggerConfig = {}): Logger {
  const options: LoggerOptions = {
    level: config.level ?? 'info',
    base: null,
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const pretty = config.pretty ?? (!config.destination && process.stdout.isTTY === true);
  if (pretty) {
    // One line per record, "(component) message" and only the fields that add to it. In-process
    // (not a transport worker), so the formatter can be a function; only used on a terminal.
    // pino-pretty loads only for a terminal: an agent logging JSON lines never needs it.
    const pinoPretty = require('pino-pretty').PinoPretty as typeof PinoPrettyFn;
    const stream = pinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', hideObject: true, ignore: 'pid,hostname', messageFormat: (log) => terminalLine(log), sync: true });
    return pino(options, stream);
  }
  const destination = config.destination ?? bufferedDestination();
  plainStreams.add(destination);
  return pino(options, destination);
}

/** The destinations of the JSON-line loggers createLogger made (not pretty, not silent). */
const plainStreams = new WeakSet<object>();

export type LineFields = Readonly<Record<string, unknown>>;

/**
 * An info line of flat fields, written without pino's generic serialiser: the same
 * bytes pino would write for `logger.info(fields, msg)` (level, time, the child's bindings, the
 * defined fields in order, msg; top-level redaction kept), built by string concatenation with a
 * fast path for strings that need no JSON escaping; a nested value (an object, an array) goes
 * through JSON.stringify, as in pino. For lines written on a request path (the
 * ext_authz decision log). Falls back to `logger.info` for a pretty (transport) logger.
 */
export function infoLineWriter(logger: Logger): (fields: LineFields, msg: string) => void {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { write(s: string): unknown } | undefined;
  const bindings = (logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym];
  if (!stream || !plainStreams.has(stream) || typeof bindings !== 'string') return (fields, msg) => logger.info(fields, msg);
  const prefix = `{"level":"info"`;
  return (fields, msg) => {
    if (logger.levelVal > 30) return;
    let line = prefix + isoTime() + bindings;
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined) continue;
      line += `,"${key}":`;
      if (REDACTED.has(key)) line += '"[redacted]"';
      else if (typeof v === 'string') line += jsonString(v);
      else if (typeof v === 'number') line += Number.isFinite(v) ? String(v) : 'null';
      else if (typeof v === 'boolean') line += v ? 'true' : 'false';
      else line += JSON.stringify(v);
    }
    stream.write(`${line},"msg":${jsonString(msg)}}\n`);
  };
}

/** JSON string literal; printable ASCII without quote or backslash is taken as it is. */
function jsonString(s: string): string {
  if (s.length > 200) return JSON.stringify(s);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c > 126 || c === 34 || c === 92) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/** A logger that drops everything, for benchmarks and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The --log-level option every long-running command declares. */
export const logLevelOption = {
  logLevel: opt.oneOf('log-level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal'], { description: 'log level', default: 'info' }),
};

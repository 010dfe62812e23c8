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
 * Lines buffered for stdout at most (bytes). The write to stdout is asynchronous and batched: lines
 * are gathered into chunks of about WRITE_BATCH_BYTES, and SonicBoom writes a chunk when it is
 * not already writing (and every FLUSH_EVERY_MS), so under load many lines share one syscall and
 * none is written on the request path. (Unbatched, an asynchronous write per line costs more than
 * the synchronous one: a thread-pool round trip each; measured with bench:authz-profile.) Past this
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

/** Our destination's way in for lines built from pieces: they are joined once per chunk, not once per line. */
const appendPieces = Symbol('meshid.appendPieces');
type Destination = NodeJS.WritableStream & { flushSync(): void; [appendPieces]?: (pieces: readonly string[], count: number, chars: number) => void };
interface Boom {
  write(s: string): boolean;
  flush(cb?: ((err?: Error) => void) | null): void;
  flushSync(): void;
  end(): void;
  on(event: 'drop', listener: (data: string) => void): unknown;
}

/**
 * An asynchronous, bounded destination (stdout by default); dropped lines are counted.
 *
 * Lines reach SonicBoom in chunks, joined here from their pieces: SonicBoom's write measures the
 * UTF-8 length of its pending string on every call (flattening the growing concatenation), and
 * a line built by `+=` is a rope that is copied again when flattened; per decision line that was
 * about 6 KB of garbage (heap sampling profile of bench:authz). The chunk is at most an eighth
 * of the bound, so a full buffer still drops few lines at a time; every way out of SonicBoom
 * (flush, the periodic flush, flushSync at exit, end) takes the chunk being gathered first.
 */
export function bufferedDestination(options: { dest?: number | string; maxLength?: number } = {}): Destination {
  const maxLength = options.maxLength ?? STDOUT_BUFFER_BYTES;
  const boom = pino.destination({ dest: options.dest ?? 1, sync: false, minLength: 0, maxWrite: WRITE_BATCH_BYTES * 2, periodicFlush: FLUSH_EVERY_MS, maxLength }) as unknown as Boom;
  boom.on('drop', (data: string) => {
    let n = 0;
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++;
    droppedLines += Math.max(1, n);
  });
  const chunkChars = Math.max(1, Math.min(WRITE_BATCH_BYTES, Math.floor(maxLength / 8)));
  const write = boom.write.bind(boom);
  const flush = boom.flush.bind(boom);
  const flushSync = boom.flushSync.bind(boom);
  const end = boom.end.bind(boom);
  // Reused between chunks: only the joined chunk is new.
  const pending: string[] = [];
  let count = 0;
  let chars = 0;
  const hand = () => {
    if (count === 0) return;
    pending.length = count;
    const chunk = pending.join('');
    count = 0;
    chars = 0;
    write(chunk);
  };
  boom.write = (s: string) => {
    pending[count++] = s;
    chars += s.length;
    if (chars >= chunkChars) hand();
    return true;
  };
  boom.flush = (cb) => (hand(), flush(cb));
  boom.flushSync = () => (hand(), flushSync());
  boom.end = () => (hand(), end());
  const dest = boom as unknown as Destination;
  dest[appendPieces] = (pieces, n, lineChars) => {
    for (let i = 0; i < n; i++) pending[count++] = pieces[i]!;
    chars += lineChars;
    if (chars >= chunkChars) hand();
  };
  return dest;
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
  const append = (stream as Destination)[appendPieces];
  // Pieces of one line, reused from line to line: `+=` per piece built a rope of ~150 nodes and
  // copied each quoted value.
  const parts: string[] = [];
  return (fields, msg) => {
    if (logger.levelVal > 30) return;
    const p = new Pieces(parts);
    p.add(prefix);
    p.add(isoTime());
    p.add(bindings);
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined) continue;
      p.add(keyPrefix(key));
      if (REDACTED.has(key)) p.add('"[redacted]"');
      else if (typeof v === 'string') p.jsonString(v);
      else if (typeof v === 'number') p.add(Number.isFinite(v) ? String(v) : 'null');
      else if (typeof v === 'boolean') p.add(v ? 'true' : 'false');
      else p.add(JSON.stringify(v));
    }
    p.add(',"msg":');
    p.jsonString(msg);
    p.add('}\n');
    if (append) append(parts, p.count, p.chars);
    else {
      parts.length = p.count;
      stream.write(parts.join(''));
    }
  };
}

/** Pieces written into a reused array, with their count and length. */
class Pieces {
  count = 0;
  chars = 0;
  constructor(private readonly parts: string[]) {}
  add(s: string): void {
    this.parts[this.count++] = s;
    this.chars += s.length;
  }
  /** A JSON string literal; printable ASCII without quote or backslash is taken as it is. */
  jsonString(s: string): void {
    if (s.length <= 200) {
      let plain = true;
      for (let i = 0; i < s.length && plain; i++) {
        const c = s.charCodeAt(i);
        plain = c >= 32 && c <= 126 && c !== 34 && c !== 92;
      }
      if (plain) {
        this.add('"');
        this.add(s);
        this.add('"');
        return;
      }
    }
    this.add(JSON.stringify(s));
  }
}

/** `,"key":` per field name, made once (field names come from code, so the map stays small). */
const keyPrefixes = new Map<string, string>();
function keyPrefix(key: string): string {
  let p = keyPrefixes.get(key);
  if (p === undefined) {
    p = `,${JSON.stringify(key)}:`;
    if (keyPrefixes.size < 1024) keyPrefixes.set(key, p);
  }
  return p;
}

/** A logger that drops everything, for benchmarks and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The --log-level option every long-running command declares. */
export const logLevelOption = {
  logLevel: opt.oneOf('log-level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal'], { description: 'log level', default: 'info' }),
};

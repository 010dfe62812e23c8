/** A pino logger whose JSON lines the test can read back. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/observability/logger.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface CapturedLogs {
  readonly logger: Logger;
  /** The destination stream, for code that builds its own logger. */
  readonly stream: Writable;
  /** Parsed lines, appended as they are written. */
  readonly lines: LogLine[];
  /** The raw text written, chunk by chunk (for "never appears in the logs" checks). */
  readonly raw: string[];
}

export function captureLogs(level = 'debug'): CapturedLogs {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      raw.push(text);
      partial += text;
      let nl;
      while ((nl = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  return { logger: createLogger({ level, pretty: false, destination: stream }), stream, lines, raw };
}

/** A stream that keeps what is written, read back as non-empty lines of text. */
export function lineSink(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

/** Runs the meshid CLI in-process with captured output. */
import { Writable } from 'node:stream';
import path from 'node:path';
import { main } from '../../../src/cli/router.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `env` is the whole environment the command sees (none by default), e.g. USER for the CA's audit lines. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect = (into: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        into.push(Buffer.from(chunk));
        cb();
      },
    });
  const stdout = collect(out);
  const stderr = collect(err);
  const code = await main(args, { stdout, stderr, env });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** A policy fixture directory (tests run from the project root). */
export function fixture(...parts: string[]): string {
  return path.resolve('test', 'fixtures', 'policies', ...parts);
}

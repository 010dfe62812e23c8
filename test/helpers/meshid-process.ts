/**
 * A meshid command as a child process, read the way a person (or a log shipper) reads it: stdout is a
 * pipe, so every line is a JSON object. Waits are event-driven on those lines; the bound on each
 * wait only turns a hang into a failure that shows the last lines seen.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** dist/test/helpers/meshid-process.js -> dist/src/cli/main.js */
export const MESHID_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string; event?: string; component?: string };

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The environment without MESHID_* settings, so the child runs on its flags and defaults only. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESHID_')));
}

export class MeshidProcess {
  readonly lines: LogLine[] = [];
  /** stdout lines that were not JSON objects. */
  readonly nonJson: string[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  /**
   * nodeArgs: flags for node itself, before the script (e.g. an --import of a test shim). user: run
   * as that uid/gid (the test runner must be root), for faults that permissions make.
   */
  constructor(args: readonly string[], options: { readonly nodeArgs?: readonly string[]; readonly user?: { readonly uid: number; readonly gid: number } } = {}) {
    this.child = spawn(process.execPath, [...(options.nodeArgs ?? []), MESHID_MAIN, ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...options.user });
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) this.lines.push(parsed as LogLine);
        else this.nonJson.push(line);
      } catch {
        this.nonJson.push(line);
      }
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    // 'close' (not 'exit'): stdout has been read to its end, so every line is in this.lines.
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Kills the process if it is still running (test teardown). */
  async stop(): Promise<void> {
    if (this.exit) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** The first line (from `from` on) that matches, as soon as it is printed. */
  waitFor(what: string, match: (l: LogLine) => boolean, options: { from?: number; timeoutMs?: number } = {}): Promise<LogLine> {
    const from = options.from ?? 0;
    // Only a bound on a hang: process start-up is slow on a loaded machine.
    const timeoutMs = options.timeoutMs ?? 20_000;
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.slice(from).find(match);
        if (found) {
          finish();
          resolve(found);
        } else if (this.exit) {
          finish();
          reject(new Error(`meshid exited (${JSON.stringify(this.exit)}) before printing ${what}\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private tail(): string {
    const last = this.lines.slice(-12).map((l) => JSON.stringify(l).slice(0, 300));
    return `last lines:\n  ${last.join('\n  ')}\nstderr: ${this.stderr.slice(-2000) || '(empty)'}`;
  }
}

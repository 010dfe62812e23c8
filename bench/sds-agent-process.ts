/**
 * The real thing for the SDS benchmark's memory figures: `meshid ca` and `meshid agent` as child
 * processes, exactly as an operator starts them, so "the agent's RSS" is the agent's, with its
 * CA client, SVID manager, SDS server, admin endpoint and metrics loaded (ext_authz off).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface AgentUnderTest {
  readonly socketPath: string;
  readonly pid: number;
  /** Resident set size from /proc (bytes). */
  rss(): number;
  close(): Promise<void>;
}

/** Resolves with the first JSON log line of child for which pick returns a value. */
export function waitForLog<T>(child: ChildProcess, what: string, pick: (line: Record<string, unknown>) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`no "${what}" from ${child.spawnfile} within 20 s`)), 20_000);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before "${what}"`)));
    lines.on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      const v = pick(line);
      if (v !== undefined) {
        clearTimeout(timer);
        resolve(v);
      }
    });
  });
}

export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export interface CaUnderTest {
  /** HOST:PORT the CA listens on. */
  readonly address: string;
  readonly bundlePath: string;
  readonly tokenPath: string;
  /** The SPIFFE ID the static token stands for. */
  readonly id: string;
  readonly pid: number;
  close(): Promise<void>;
}

/** `meshid ca` with a state dir and one static token (written to tokenPath) under dir; more flags in extraArgs. */
export async function startCaProcess(dir: string, extraArgs: readonly string[] = []): Promise<CaUnderTest> {
  const id = 'spiffe://cluster.local/ns/bench/sa/envoy';
  const token = 'bench-static-token-0123456789';
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), `tokens:\n  ${token}: ${id}\n`, { mode: 0o600 });
  const tokenPath = path.join(dir, 'token');
  fs.writeFileSync(tokenPath, `${token}\n`, { mode: 0o600 });
  const caDir = path.join(dir, 'ca');
  const ca = spawn(process.execPath, [MAIN, 'ca', '--listen', '127.0.0.1:0', '--state-dir', caDir, '--static-tokens', path.join(dir, 'tokens.yaml'), ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const address = await waitForLog(ca, 'CA listening', (l) => (l.event === 'listening' ? String(l.address) : undefined));
    return { address, bundlePath: path.join(caDir, 'bundle.pem'), tokenPath, id, pid: ca.pid!, close: () => stop(ca) };
  } catch (e) {
    await stop(ca);
    throw e;
  }
}

export async function startAgentProcesses(dir: string): Promise<AgentUnderTest> {
  const ca = await startCaProcess(dir);
  let agent: ChildProcess | undefined;
  try {
    const socketPath = path.join(dir, 'agent-sds.sock');
    agent = spawn(
      process.execPath,
      [MAIN, 'agent', '--ca-address', ca.address, '--ca-bundle', ca.bundlePath, '--token-file', ca.tokenPath,
        '--spiffe-id', ca.id, '--sds-socket', socketPath, '--admin-listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await waitForLog(agent, 'SVID issued', (l) => (l.msg === 'SVID issued' ? true : undefined));
    const child = agent;
    return {
      socketPath,
      pid: child.pid!,
      rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024,
      close: async () => {
        await stop(child);
        await ca.close();
      },
    };
  } catch (e) {
    if (agent) await stop(agent);
    await ca.close();
    throw e;
  }
}

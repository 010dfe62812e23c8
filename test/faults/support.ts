/**
 * A real `meshid agent` process for the fault matrix: the orders workload's identity, its sockets
 * in DIR/run, the admin endpoint on a free port. Stopped (SIGKILL if still running) at teardown.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { ORDERS, ORDERS_TOKEN, TD } from '../agent/stand.js';
import { MeshidProcess } from '../helpers/meshid-process.js';
import { SdsClient } from '../helpers/sds-client.js';

export interface FaultAgent {
  readonly process: MeshidProcess;
  readonly admin: string;
  readonly sdsSocket: string;
  /** An SDS client on the agent's socket (one per agent, closed at teardown). */
  sds(): SdsClient;
}

export interface FaultAgentOptions {
  readonly caAddress: string;
  readonly caBundle: string;
  readonly args?: readonly string[];
  /** Node flags for the agent process (e.g. --import of a shim). */
  readonly nodeArgs?: readonly string[];
  /** Run the agent as this uid/gid (the runner must be root). */
  readonly user?: { readonly uid: number; readonly gid: number };
}

export function agentArgs(dir: string, o: FaultAgentOptions): string[] {
  const tokenFile = path.join(dir, 'orders.token');
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, `${ORDERS_TOKEN}\n`);
  return [
    'agent',
    `--ca-address=${o.caAddress}`,
    `--ca-bundle=${o.caBundle}`,
    `--token-file=${tokenFile}`,
    `--trust-domain=${TD}`,
    `--spiffe-id=${ORDERS}`,
    `--sds-socket=${path.join(dir, 'run', 'sds.sock')}`,
    '--admin-listen=127.0.0.1:0',
    ...(o.args ?? []),
  ];
}

export async function startFaultAgent(t: ExecutionContext, dir: string, o: FaultAgentOptions): Promise<FaultAgent> {
  const process = new MeshidProcess(agentArgs(dir, o), { nodeArgs: o.nodeArgs ?? [], ...(o.user ? { user: o.user } : {}) });
  let client: SdsClient | undefined;
  t.teardown(async () => {
    client?.close();
    await process.stop();
  });
  const started = await process.waitFor('agent started', (l) => l.msg === `agent started (pid ${process.pid})`);
  const sdsSocket = path.join(dir, 'run', 'sds.sock');
  return {
    process,
    admin: String(started.admin),
    sdsSocket,
    sds: () => (client ??= new SdsClient({ socketPath: sdsSocket, node: { id: 'sidecar~10.0.0.9~orders~shop.svc.cluster.local', cluster: 'orders' } })),
  };
}

/** Polls /readyz until 200 (real processes on the real clock), or fails with its last answer. */
export async function untilReady(admin: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(`${admin}/readyz`);
    if (r.status === 200) return;
    if (Date.now() > deadline) throw new Error(`not ready within ${timeoutMs} ms: ${await r.text()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

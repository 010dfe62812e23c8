/** How `authz check` and `authz ask` print a decision: one JSON object per line on stdout. */
import type { CommandIO } from './command.js';

export function writeDecision(io: CommandIO, view: Readonly<Record<string, unknown>>): void {
  io.stdout.write(`${JSON.stringify(view)}\n`);
}

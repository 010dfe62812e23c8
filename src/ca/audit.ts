/**
 * The CA's audit trail: one JSON line per issuance, refusal and revocation (who asked, which
 * identity, serial, validity), appended to a file and fsynced before the command reports success.
 * Never sampled, never buffered: a line that is not on disk makes the command fail.
 */
import os from 'node:os';
import { appendLineDurably } from '../lib/atomic-file.js';
import { errorMessage, MeshidError } from '../lib/errors.js';

export const AUDIT_FILE = 'audit.log';

export type AuditEvent = 'issue' | 'refuse' | 'revoke' | 'crl';

export interface AuditRecord {
  readonly event: AuditEvent;
  readonly identity?: string;
  readonly partner?: string;
  readonly serial?: string;
  readonly fingerprint?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly reason?: string;
  readonly error?: string;
  readonly [k: string]: unknown;
}

/** Who runs the command: the OS user and host (an offline command has no other caller). */
export function operatorName(env: NodeJS.ProcessEnv): string {
  let user = env.USER ?? env.LOGNAME;
  try {
    user ??= os.userInfo().username;
  } catch {
    user ??= `uid ${process.getuid?.() ?? '?'}`;
  }
  return `${user}@${os.hostname()}`;
}

export class AuditLog {
  constructor(
    readonly file: string,
    private readonly who: string,
    private readonly now: () => number,
  ) {}

  write(record: AuditRecord): void {
    const line = JSON.stringify({ time: new Date(this.now()).toISOString(), audit: 'meshid-ca', who: this.who, ...record });
    try {
      appendLineDurably(this.file, line);
    } catch (e) {
      throw new MeshidError('audit_log_unwritable', `cannot append to the audit log ${this.file} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
    }
  }
}

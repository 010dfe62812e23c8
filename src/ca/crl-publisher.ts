/**
 * Signing the CRL of every recorded revocation into <state-dir>/crl.pem: what `meshid ca revoke`,
 * `meshid ca crl` and a running `meshid ca` (before nextUpdate) all do. Each CRL takes the next
 * cRLNumber from the registry, so writers of one state directory hold STATE_LOCK_FILE around the
 * read-modify-write (the offline commands for their whole run, the running CA while it re-signs).
 */
import path from 'node:path';
import { writeFileDurably } from '../lib/atomic-file.js';
import type { AuditLog } from './audit.js';
import type { Authority } from './authority.js';
import { buildCrl, crlPem } from './crl.js';
import type { Registry } from './registry.js';

export const CRL_FILE = 'crl.pem';
/** Taken by every process that rewrites registry.json or crl.pem (src/lib/file-lock.ts). */
export const STATE_LOCK_FILE = 'state.lock';
export const DEFAULT_CRL_VALIDITY_MS = 24 * 3_600_000;
/** How long a writer waits for another to finish with the state directory. */
export const STATE_LOCK_TIMEOUT_MS = 10_000;

export interface CrlPublishTarget {
  readonly authority: Authority;
  readonly registry: Registry;
  readonly audit: AuditLog;
  readonly stateDir: string;
}

export interface PublishedCrl {
  readonly file: string;
  readonly der: Buffer;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/** Signs a CRL of every recorded revocation, writes it to <state-dir>/crl.pem (fsynced) and audits it. The caller holds the state lock. */
export function publishCrl(ca: CrlPublishTarget, now: number, validityMs: number, why = 'published'): PublishedCrl {
  const { registry, authority } = ca;
  registry.data.crlNumber += 1;
  registry.save();
  const thisUpdate = new Date(now);
  const nextUpdate = new Date(now + validityMs);
  const der = buildCrl({
    issuer: authority.issuingCertificate,
    issuerKey: authority.material.key,
    thisUpdate,
    nextUpdate,
    crlNumber: registry.data.crlNumber,
    entries: registry.data.revoked.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt), reason: r.reason })),
  });
  const file = path.join(ca.stateDir, CRL_FILE);
  writeFileDurably(file, crlPem(der), 0o644);
  ca.audit.write({ event: 'crl', crlNumber: registry.data.crlNumber, revoked: registry.data.revoked.length, nextUpdate: nextUpdate.toISOString(), why });
  return { file, der, crlNumber: registry.data.crlNumber, thisUpdate, nextUpdate };
}

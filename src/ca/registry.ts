/**
 * The CA's durable record of partner certificates it issued and of every revocation:
 * <state-dir>/registry.json, rewritten whole through writeFileDurably (fsync, rename, fsync of the
 * directory), so a crash mid-write leaves the previous record or the new one, never a torn file,
 * and a revocation reported done is on disk. One writer at a time is assumed (the offline commands
 * an operator runs); the file carries a version for later formats.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileDurably } from '../lib/atomic-file.js';
import { errorMessage, MeshidError } from '../lib/errors.js';

export const REGISTRY_FILE = 'registry.json';

export interface IssuedRecord {
  readonly serial: string;
  readonly name: string;
  readonly spiffeId: string;
  readonly subject: string;
  readonly fingerprint: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  readonly issuedBy: string;
}

export interface RevocationRecord {
  /** Lowercase hex, as Certificate.serial. */
  readonly serial: string;
  readonly spiffeId?: string;
  readonly reason: RevocationReason;
  readonly revokedAt: string;
  readonly revokedBy: string;
}

/** RFC 5280 5.3.1 CRLReason names and codes (7 is unused). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function parseRevocationReason(s: string): RevocationReason {
  if (Object.hasOwn(REVOCATION_REASONS, s)) return s as RevocationReason;
  throw new MeshidError('revocation_reason_invalid', `unknown revocation reason ${JSON.stringify(s)}; one of ${Object.keys(REVOCATION_REASONS).join(', ')}`);
}

export interface RegistryData {
  readonly version: 1;
  readonly issued: IssuedRecord[];
  readonly revoked: RevocationRecord[];
  /** The last CRL number used; each CRL gets the next (RFC 5280 5.2.3: monotonically increasing). */
  crlNumber: number;
}

const HEX_RE = /^[0-9a-f]{2,40}$/;

/** A serial as typed by an operator ("0A:1b", "0a1b", "0x0a1b") in Certificate.serial form. */
export function normalizeSerial(s: string): string {
  const hex = s.trim().toLowerCase().replace(/^0x/, '').replace(/:/g, '');
  const even = hex.length % 2 === 1 ? `0${hex}` : hex;
  if (!HEX_RE.test(even)) throw new MeshidError('serial_invalid', `serial ${JSON.stringify(s)} is not a hex serial number of at most 20 bytes`);
  return even;
}

export class Registry {
  private constructor(
    private readonly file: string,
    readonly data: RegistryData,
  ) {}

  static load(stateDir: string): Registry {
    const file = path.join(stateDir, REGISTRY_FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Registry(file, { version: 1, issued: [], revoked: [], crlNumber: 0 });
      throw new MeshidError('ca_state_invalid', `state dir ${stateDir}: cannot read ${REGISTRY_FILE} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new MeshidError('ca_state_invalid', `state dir ${stateDir}: ${REGISTRY_FILE} is not JSON (${errorMessage(e)}); restore it from a backup`);
    }
    const d = data as Partial<RegistryData>;
    if (d?.version !== 1 || !Array.isArray(d.issued) || !Array.isArray(d.revoked) || typeof d.crlNumber !== 'number') {
      throw new MeshidError('ca_state_invalid', `state dir ${stateDir}: ${REGISTRY_FILE} is not a version 1 registry`);
    }
    return new Registry(file, d as RegistryData);
  }

  save(): void {
    writeFileDurably(this.file, `${JSON.stringify(this.data, null, 2)}\n`, 0o600);
  }

  revokedSerial(serial: string): RevocationRecord | undefined {
    return this.data.revoked.find((r) => r.serial === serial);
  }

  issuedFor(spiffeId: string): IssuedRecord[] {
    return this.data.issued.filter((r) => r.spiffeId === spiffeId);
  }

  /**
   * SPIFFE IDs revoked as identities: every certificate recorded for the ID is revoked (what
   * `meshid ca revoke --id` does) and one of them is still unexpired at now. A partner issued a new
   * certificate afterwards is no longer in the list; one whose certificates have all expired drops out.
   */
  revokedIdentities(now: number): string[] {
    const byId = new Map<string, { all: boolean; live: boolean }>();
    for (const r of this.data.issued) {
      const e = byId.get(r.spiffeId) ?? { all: true, live: false };
      const revoked = this.revokedSerial(r.serial) !== undefined;
      e.all &&= revoked;
      if (revoked && Date.parse(r.notAfter) > now) e.live = true;
      byId.set(r.spiffeId, e);
    }
    return [...byId].filter(([, e]) => e.all && e.live).map(([id]) => id).sort();
  }

  bySerial(serial: string): IssuedRecord | undefined {
    return this.data.issued.find((r) => r.serial === serial);
  }
}

/**
 * The running CA's CRL: the one it serves on meshid.ca.v1.RevocationService/FetchCRL, kept fresh.
 *
 * - Revocations are recorded by the offline `meshid ca revoke` (registry.json, then crl.pem). The
 *   keeper watches both files and adopts a crl.pem that is this CA's, verifies, and covers every
 *   revocation in the registry; it signs one itself (under the state lock) when crl.pem is
 *   missing, unusable, behind the registry for longer than a writer needs, or half-way to its
 *   nextUpdate.
 * - Callers waiting for a CRL newer than theirs (the long poll) are answered the moment one is
 *   adopted.
 * Time comes from the injected Clock; file events are debounced on it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Clock, Timer } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import { Rerun } from '../lib/rerun.js';
import { lock } from '../lib/file-lock.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import type { Logger } from '../observability/logger.js';
import { AuditLog } from './audit.js';
import type { Authority } from './authority.js';
import { type ParsedCrl, parseCrlPem, serialKey } from './crl.js';
import { CRL_FILE, publishCrl, STATE_LOCK_FILE, STATE_LOCK_TIMEOUT_MS } from './crl-publisher.js';
import { REGISTRY_FILE, Registry } from './registry.js';

export interface CrlKeeperOptions {
  readonly stateDir: string;
  readonly authority: Authority;
  /** thisUpdate to nextUpdate of the CRLs this process signs. */
  readonly validityMs: number;
  readonly auditLog: string;
  /** Who the audit lines of re-signed CRLs name. */
  readonly who: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Quiet period after a file event before the files are re-read (default 10 ms: revocations are urgent). */
  readonly debounceMs?: number;
  /** Re-read the files this often whatever the watch saw (default 5 s). */
  readonly resyncMs?: number;
}

export interface ServedCrl {
  readonly der: Buffer;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revokedIds: readonly string[];
}

/** A registry ahead of crl.pem for this long means its writer died before writing the CRL: sign one. */
const WRITER_GRACE_MS = 2000;

interface Waiter {
  readonly known: number;
  readonly answer: (closing: boolean) => void;
  readonly timer: Timer;
}

export class CrlKeeper {
  private served: ServedCrl | undefined;
  private revokedSerials = new Set<string>();
  private readonly waiters = new Set<Waiter>();
  private watch: PathWatch | undefined;
  private refreshTimer: Timer | undefined;
  private behindSince: number | undefined;
  /** A look sooner than the re-sign time (a writer was mid-way). */
  private soonAt: number | undefined;
  /** Refreshes: one at a time; a change during one is looked at once more afterwards. */
  private readonly refreshes = new Rerun(() => this.refreshLogged(), { stopped: () => this.closed, settled: () => this.schedule() });
  private closed = false;
  private readonly log: Logger;
  private readonly audit: AuditLog;

  private constructor(private readonly options: CrlKeeperOptions) {
    this.log = options.logger.child({ component: 'crl' });
    this.audit = new AuditLog(options.auditLog, options.who, () => options.clock.now());
  }

  /** Reads (or signs) the CRL once, then watches the state directory. */
  static async start(options: CrlKeeperOptions): Promise<CrlKeeper> {
    const keeper = new CrlKeeper(options);
    await keeper.refresh();
    keeper.watch = watchPaths([path.join(options.stateDir, REGISTRY_FILE), path.join(options.stateDir, CRL_FILE)], () => void keeper.refresh(), {
      clock: options.clock,
      debounceMs: options.debounceMs ?? 10,
      settleMs: 250,
      resyncMs: options.resyncMs ?? 5000,
      onError: (e) => keeper.log.warn({ err: errorMessage(e) }, 'state directory watch error'),
    });
    await keeper.watch.ready;
    return keeper;
  }

  current(): ServedCrl | undefined {
    return this.served;
  }

  /** Whether the CA has revoked this serial (lowercase hex): its CRL or its registry says so. */
  isRevoked(serial: string): boolean {
    return this.revokedSerials.has(serialKey(serial));
  }

  /**
   * Calls answer once a CRL numbered above known is served, or after ms, or (closing: true) at
   * close; returns a cancel function (the call went away).
   */
  waitNewer(known: number, ms: number, answer: (closing: boolean) => void): () => void {
    if (this.closed || (this.served?.crlNumber ?? 0) > known || ms <= 0) {
      answer(this.closed);
      return () => {};
    }
    const waiter: Waiter = {
      known,
      answer,
      timer: this.options.clock.setTimer(ms, () => {
        if (this.waiters.delete(waiter)) answer(false);
      }),
    };
    this.waiters.add(waiter);
    return () => {
      waiter.timer.cancel();
      this.waiters.delete(waiter);
    };
  }

  /** Callers waiting right now. */
  waiting(): number {
    return this.waiters.size;
  }

  /** Stops watching and answers every waiting caller (closing: they retry elsewhere or later). */
  async close(): Promise<void> {
    this.closed = true;
    this.refreshTimer?.cancel();
    for (const w of [...this.waiters]) {
      this.waiters.delete(w);
      w.timer.cancel();
      w.answer(true);
    }
    await this.watch?.close();
    await this.refreshes.idle();
  }

  refresh(): Promise<void> {
    return this.refreshes.run();
  }

  private async refreshLogged(): Promise<void> {
    try {
      await this.refreshOnce();
    } catch (e) {
      this.log.error({ event: 'crl_refresh_failed', err: errorMessage(e) }, 'cannot refresh the CRL; serving the previous one');
    }
  }

  private async refreshOnce(): Promise<void> {
    const now = this.options.clock.now();
    const seen = this.read();
    const need = this.needsSigning(seen, now);
    if (!need) {
      this.behindSince = undefined;
      this.adopt(seen.crl!, seen.registry);
      return;
    }
    if (need === 'behind') {
      // The offline command writes registry.json, then crl.pem: give it the time to finish.
      this.behindSince ??= now;
      if (now - this.behindSince < WRITER_GRACE_MS) {
        if (seen.crl) this.adopt(seen.crl, seen.registry);
        this.soonAt = now + WRITER_GRACE_MS;
        return;
      }
    }
    const held = await lock(path.join(this.options.stateDir, STATE_LOCK_FILE), STATE_LOCK_TIMEOUT_MS);
    try {
      // Another writer may have finished while we waited for the lock.
      const locked = this.read();
      const why = this.needsSigning(locked, this.options.clock.now());
      if (!why) {
        this.adopt(locked.crl!, locked.registry);
        return;
      }
      const published = publishCrl({ authority: this.options.authority, registry: locked.registry, audit: this.audit, stateDir: this.options.stateDir }, this.options.clock.now(), this.options.validityMs, why);
      this.behindSince = undefined;
      this.log.info({ event: 'crl_signed', crlNumber: published.crlNumber, nextUpdate: published.nextUpdate.toISOString(), why }, `CRL ${published.crlNumber} signed (${why})`);
      this.adopt(parseCrlPem(fs.readFileSync(published.file, 'utf8'), published.file), locked.registry);
    } finally {
      held.release();
    }
  }

  private read(): { registry: Registry; crl: ParsedCrl | undefined; problem?: string } {
    const registry = Registry.load(this.options.stateDir);
    const file = path.join(this.options.stateDir, CRL_FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      return { registry, crl: undefined, problem: `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})` };
    }
    try {
      const crl = parseCrlPem(text, file);
      const issuer = this.options.authority.issuingCertificate;
      if (!crl.issuer.equals(issuer.subject) || !crl.verifySignedBy(issuer.publicKey())) return { registry, crl: undefined, problem: `${file} is not signed by this CA` };
      return { registry, crl };
    } catch (e) {
      return { registry, crl: undefined, problem: errorMessage(e) };
    }
  }

  /** Why crl.pem cannot be served as it is, or undefined when it can. */
  private needsSigning(seen: { registry: Registry; crl: ParsedCrl | undefined; problem?: string }, now: number): string | undefined {
    const { crl, registry } = seen;
    if (!crl) {
      if (seen.problem && !seen.problem.includes('ENOENT')) this.log.warn({ event: 'crl_unusable', problem: seen.problem }, 'crl.pem is unusable; signing a new CRL');
      return 'missing';
    }
    const listed = new Set([...crl.revoked.keys()].map(serialKey));
    if (registry.data.revoked.some((r) => !listed.has(serialKey(r.serial)))) return 'behind';
    if (crl.crlNumber === undefined || crl.crlNumber < registry.data.crlNumber) return 'behind';
    if (!crl.nextUpdate) return 'no nextUpdate';
    const halfway = crl.thisUpdate.getTime() + (crl.nextUpdate.getTime() - crl.thisUpdate.getTime()) / 2;
    if (now >= halfway) return 'refresh before nextUpdate';
    return undefined;
  }

  private adopt(crl: ParsedCrl, registry: Registry): void {
    const serials = new Set<string>([...crl.revoked.keys()].map(serialKey));
    for (const r of registry.data.revoked) serials.add(serialKey(r.serial));
    this.revokedSerials = serials;
    const number = crl.crlNumber ?? 0;
    const revokedIds = registry.revokedIdentities(this.options.clock.now());
    const previous = this.served;
    if (previous && previous.crlNumber === number && previous.revokedIds.join('\n') === revokedIds.join('\n')) return;
    if (previous && number < previous.crlNumber) {
      this.log.warn({ event: 'crl_rollback', crlNumber: number, served: previous.crlNumber }, 'crl.pem went back to an older CRL number; keeping the newer CRL');
      return;
    }
    this.served = Object.freeze({ der: crl.der, crlNumber: number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate!, revokedIds: Object.freeze(revokedIds) });
    if (previous?.crlNumber !== number) this.log.info({ event: 'crl_served', crlNumber: number, revoked: crl.revoked.size, nextUpdate: crl.nextUpdate?.toISOString() }, `serving CRL ${number}`);
    for (const w of [...this.waiters]) {
      if (w.known >= number) continue;
      this.waiters.delete(w);
      w.timer.cancel();
      w.answer(false);
    }
  }

  /** The next look: half-way to the served CRL's nextUpdate (its re-sign), or sooner when a writer was mid-way. */
  private schedule(): void {
    if (this.closed) return;
    this.refreshTimer?.cancel();
    const s = this.served;
    const now = this.options.clock.now();
    let at = s ? s.thisUpdate.getTime() + (s.nextUpdate.getTime() - s.thisUpdate.getTime()) / 2 : now + 1000;
    if (this.soonAt !== undefined) at = Math.min(at, this.soonAt);
    this.soonAt = undefined;
    // A re-sign that failed (the lock busy, the disk full) is retried once a second, not in a loop.
    at = Math.max(at, now + 1000);
    this.refreshTimer = this.options.clock.setTimer(Math.max(0, at - now), () => void this.refresh());
  }
}

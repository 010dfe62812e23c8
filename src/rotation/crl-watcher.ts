/**
 * The agent's view of the CA's revocations: the last good CRL and the identities revoked with it.
 *
 * A CRL is offered by the long poll of the CA's RevocationService/FetchCRL (start()) or by the
 * entry point reading a watched --crl-file (offer()). Before it is used it must verify: signed by a
 * CA certificate of the trust bundle or of the chain above this agent's SVID, thisUpdate not in the
 * future, nextUpdate after thisUpdate and not passed, and a cRLNumber not below the one held (an
 * older CRL replayed would un-revoke). A CRL that fails keeps the last good one. One whose issuer
 * is not known yet (no bundle before the first SVID) is kept aside and tried again by recheck().
 *
 * The hot path (ext_authz, the CA's own SVID check) asks isRevokedSerial / isRevokedId: Set lookups.
 * Time comes from the injected Clock.
 */
import { type ParsedCrl, crlPem, crlProblem, parseCrl, parseCrlPem, serialKey } from '../ca/crl.js';
import { Backoff } from '../lib/backoff.js';
import type { Certificate } from '../identity/certificate.js';
import type { Clock, Timer } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { CaAuth, CaCallResult } from './ca-signer.js';

/** What the watcher needs of a CA (src/ca/client.ts has this shape). */
export interface CrlFetcher {
  fetchCrl(knownCrlNumber: number, waitMs: number, auth: CaAuth): Promise<CaCallResult<{ readonly crlNumber: number; readonly crlDer?: Buffer; readonly revokedIds: readonly string[] }>>;
}

export interface HeldCrl {
  readonly der: Buffer;
  /** PEM, as Envoy's CertificateValidationContext.crl and node:tls take it. */
  readonly pem: string;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revokedSerials: ReadonlySet<string>;
  readonly revokedIds: ReadonlySet<string>;
  /** 'ca' or the file it came from. */
  readonly source: string;
}

/** Default hold of one FetchCRL at the CA: an idle agent costs the CA one call per this long. */
export const DEFAULT_CRL_WAIT_MS = 30_000;

export interface CrlWatcherOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The certificates a CRL may be signed by: the trust bundle's roots and the intermediates above our SVID. */
  readonly issuers: () => readonly Certificate[];
  /** Called after the CRL in force (or its usability for handshakes) changed. */
  readonly onChange?: (crl: HeldCrl | undefined) => void;
  /** For start(): the CA and how to authenticate to it (preferToken after an mTLS refusal). */
  readonly fetcher?: CrlFetcher;
  readonly auth?: (preferToken: boolean) => Promise<CaAuth | undefined>;
  /** How long the CA may hold one FetchCRL (default DEFAULT_CRL_WAIT_MS). */
  readonly waitMs?: number;
  /** Backoff after a failed fetch (default 500 ms doubling to 30 s). */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  readonly random?: () => number;
}

const UNIMPLEMENTED = 12;
const UNIMPLEMENTED_RETRY_MS = 5 * 60_000;

export class CrlWatcher {
  private held: HeldCrl | undefined;
  private pending: { readonly crl: ParsedCrl; readonly revokedIds: readonly string[]; readonly source: string } | undefined;
  private expiryTimer: Timer | undefined;
  private pollTimer: Timer | undefined;
  private running = false;
  private preferToken = false;
  private unimplementedLogged = false;
  private readonly backoff: Backoff;
  private readonly log: Logger;

  constructor(private readonly options: CrlWatcherOptions) {
    this.log = options.logger.child({ component: 'crl' });
    const retry = options.retry ?? { initialMs: 500, maxMs: 30_000 };
    this.backoff = new Backoff({ initialMs: retry.initialMs, maxMs: retry.maxMs, multiplier: 2, random: options.random ?? Math.random });
  }

  /** The CRL in force (verified), if any; it stays in force for ext_authz after its nextUpdate until a newer one comes. */
  current(): HeldCrl | undefined {
    return this.held;
  }

  /** The CRL to hand to TLS (SDS): the one in force while before its nextUpdate (OpenSSL and Envoy refuse every peer with an expired CRL). */
  forHandshakes(): HeldCrl | undefined {
    const h = this.held;
    return h && h.nextUpdate.getTime() > this.options.clock.now() ? h : undefined;
  }

  isRevokedSerial(serial: string): boolean {
    return this.held !== undefined && this.held.revokedSerials.has(serialKey(serial));
  }

  isRevokedId(spiffeId: string): boolean {
    return this.held !== undefined && this.held.revokedIds.has(spiffeId);
  }

  /** A CRL (PEM or DER) from a file or the CA; returns whether it is now the one in force. Never throws. */
  offer(bytes: Buffer | string, source: string, revokedIds: readonly string[] = []): boolean {
    let crl: ParsedCrl;
    try {
      crl = typeof bytes === 'string' || looksLikePem(bytes) ? parseCrlPem(bytes.toString(), source) : parseCrl(bytes);
    } catch (e) {
      this.log.warn({ event: 'crl_refused', source, problem: errorMessage(e) }, `CRL from ${source} refused; keeping the last good one`);
      return false;
    }
    return this.consider(crl, revokedIds, source);
  }

  /** Tries a CRL set aside for want of its issuer again (call when the bundle or the SVID changed). */
  recheck(): void {
    const p = this.pending;
    if (p) this.consider(p.crl, p.revokedIds, p.source);
  }

  /** Long-polls the CA until stop(). */
  start(): void {
    if (this.running || !this.options.fetcher) return;
    this.running = true;
    void this.poll();
  }

  stop(): void {
    this.running = false;
    this.pollTimer?.cancel();
    this.expiryTimer?.cancel();
  }

  private consider(crl: ParsedCrl, revokedIds: readonly string[], source: string): boolean {
    const now = this.options.clock.now();
    const issuers = this.options.issuers();
    const problem = crlProblem(crl, issuers, now);
    if (problem) {
      const unknownIssuer = !issuers.some((c) => c.subject.equals(crl.issuer));
      this.pending = unknownIssuer ? { crl, revokedIds, source } : undefined;
      this.log.warn({ event: 'crl_refused', source, crlNumber: crl.crlNumber, problem }, `CRL from ${source} refused: ${problem}; keeping the last good one`);
      return false;
    }
    this.pending = undefined;
    const number = crl.crlNumber ?? 0;
    const held = this.held;
    if (held && number < held.crlNumber) {
      this.log.warn({ event: 'crl_refused', source, crlNumber: number, held: held.crlNumber }, `CRL ${number} from ${source} is older than CRL ${held.crlNumber} in force; refused`);
      return false;
    }
    const ids = new Set(revokedIds);
    if (held && number === held.crlNumber && held.der.equals(crl.der) && sameSet(ids, held.revokedIds)) return true;
    this.held = Object.freeze({
      der: crl.der,
      pem: crlPem(crl.der),
      crlNumber: number,
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate!,
      revokedSerials: new Set([...crl.revoked.keys()].map(serialKey)),
      revokedIds: ids,
      source,
    });
    this.log.info(
      { event: 'crl_updated', source, crlNumber: number, revoked: crl.revoked.size, revokedIds: ids.size, nextUpdate: crl.nextUpdate!.toISOString() },
      `CRL ${number} in force (${crl.revoked.size} revoked)`,
    );
    this.armExpiry();
    this.changed();
    return true;
  }

  /** At nextUpdate the CRL leaves the handshake path (see forHandshakes); ext_authz keeps using it. */
  private armExpiry(): void {
    this.expiryTimer?.cancel();
    const h = this.held;
    if (!h) return;
    const ms = h.nextUpdate.getTime() - this.options.clock.now();
    this.expiryTimer = this.options.clock.setTimer(Math.max(0, ms), () => {
      if (this.held !== h) return;
      this.log.error(
        { event: 'crl_expired', crlNumber: h.crlNumber, nextUpdate: h.nextUpdate.toISOString() },
        'the CRL passed its nextUpdate without a newer one: no longer served to TLS (ext_authz still denies what it lists); check the CA',
      );
      this.changed();
    });
  }

  private changed(): void {
    try {
      this.options.onChange?.(this.forHandshakes());
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, 'a CRL subscriber threw');
    }
  }

  private async poll(): Promise<void> {
    if (!this.running) return;
    const { fetcher, auth } = this.options;
    let delay = 0;
    try {
      const credentials = await auth?.(this.preferToken);
      if (!credentials) {
        delay = this.backoff.next();
      } else {
        const r = await fetcher!.fetchCrl(this.held?.crlNumber ?? 0, this.options.waitMs ?? DEFAULT_CRL_WAIT_MS, credentials);
        if (!this.running) return;
        if (r.ok) {
          this.backoff.reset();
          this.preferToken = false;
          if (r.response.crlDer) {
            if (!this.offer(r.response.crlDer, 'ca', r.response.revokedIds)) delay = this.backoff.next();
          }
        } else if (r.grpcCode === UNIMPLEMENTED) {
          if (!this.unimplementedLogged) this.log.warn({ event: 'crl_unavailable', error: r.message }, 'the CA has no RevocationService (not meshid ca?); retrying every 5 min (set --crl-source off or file)');
          this.unimplementedLogged = true;
          delay = UNIMPLEMENTED_RETRY_MS;
        } else {
          // A revoked SVID no longer authenticates: the token does, while the manager renews.
          if (credentials.kind === 'mtls' && (r.kind === 'unauthenticated' || r.kind === 'permission_denied')) this.preferToken = true;
          delay = this.backoff.next(r.retryAfterMs);
          this.log.warn({ event: 'crl_fetch_failed', kind: r.kind, error: r.message, retryInMs: delay }, 'could not fetch the CRL from the CA; keeping the one held');
        }
      }
    } catch (e) {
      delay = this.backoff.next();
      this.log.error({ event: 'crl_fetch_failed', err: errorMessage(e), retryInMs: delay }, 'CRL fetch failed');
    }
    if (!this.running) return;
    // The next long poll goes out at once after an answer; only failures wait (on the injected clock).
    if (delay === 0) void Promise.resolve().then(() => this.poll());
    else this.pollTimer = this.options.clock.setTimer(delay, () => void this.poll());
  }
}

function looksLikePem(b: Buffer): boolean {
  return b.subarray(0, 64).toString('latin1').includes('-----BEGIN');
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

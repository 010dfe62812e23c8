/**
 * The trust domain's roots, merged from the two sources we trust and nothing else: the root at the
 * end of each chain the CA issued us, and the bundle configured from outside (a watched file).
 *
 * Merge rule:
 *  - the root of the chain we currently hold is always in (peers issued with us share it);
 *  - every configured root is in, as long as the configuration lists it;
 *  - with no configured bundle, a root the CA issued us under earlier stays in until the last SVID
 *    we received under it expires, so peers not yet renewed onto a new root keep working during a
 *    root rotation; with a configured bundle, the configuration alone decides about those roots,
 *    so removing a root from the file removes it.
 * Pure: time comes in as an argument.
 */
import crypto from 'node:crypto';
import { MeshidError } from '../lib/errors.js';
import { type Certificate, certificatesToPem, parseCertificatesPem } from '../identity/certificate.js';
import type { TrustBundleView } from './svid.js';

interface Root {
  readonly cert: Certificate;
  readonly fingerprint: string;
}

function rootOf(cert: Certificate): Root {
  return { cert, fingerprint: crypto.createHash('sha256').update(cert.der).digest('hex') };
}

/** Parses a configured bundle: one or more CA certificates; anything else is refused by name. */
export function parseRootsPem(pem: string, what = 'trust bundle'): Certificate[] {
  const certs = parseCertificatesPem(pem, what);
  certs.forEach((c, i) => {
    if (c.basicConstraints?.ca !== true) {
      throw new MeshidError('invalid_argument', 'bundle_not_ca', `${what}, certificate ${i + 1} (${c.subjectText || 'empty subject'}): not a CA certificate`);
    }
  });
  return certs;
}

export class TrustBundleState {
  private configured: Map<string, Root> | undefined;
  /** Roots learned from CA responses, with the expiry of the last SVID received under each. */
  private readonly learned = new Map<string, { root: Root; retainUntil: number }>();
  private current: string | undefined;
  private cachedView: TrustBundleView | undefined;

  constructor(readonly trustDomain: string) {}

  /** Replaces the configured roots (undefined: none configured). Returns whether the bundle changed. */
  setConfigured(certs: readonly Certificate[] | undefined): boolean {
    return this.mutate(() => {
      this.configured = certs && new Map(certs.map((c) => rootOf(c)).map((r) => [r.fingerprint, r]));
    });
  }

  /** Records the root that ends an accepted chain, whose leaf expires at leafNotAfter. */
  learnFromCa(root: Certificate, leafNotAfter: number): boolean {
    return this.mutate(() => {
      const r = rootOf(root);
      const prior = this.learned.get(r.fingerprint);
      this.learned.set(r.fingerprint, { root: r, retainUntil: Math.max(prior?.retainUntil ?? 0, leafNotAfter) });
      this.current = r.fingerprint;
    });
  }

  /** Forgets earlier CA roots whose last SVID has expired. Returns whether the bundle changed. */
  prune(now: number): boolean {
    return this.mutate(() => {
      for (const [fp, entry] of this.learned) {
        if (fp !== this.current && entry.retainUntil <= now) this.learned.delete(fp);
      }
    });
  }

  /** When prune next has something to do, if ever. */
  nextPruneAt(): number | undefined {
    let next: number | undefined;
    for (const [fp, entry] of this.learned) {
      if (fp !== this.current && (next === undefined || entry.retainUntil < next)) next = entry.retainUntil;
    }
    return next;
  }

  /** The roots in the bundle, for verifying chains against it. */
  roots(): Certificate[] {
    return this.members().map((r) => r.cert);
  }

  view(): TrustBundleView | undefined {
    return this.cachedView;
  }

  private members(): Root[] {
    const out = new Map<string, Root>(this.configured ?? []);
    for (const [fp, { root }] of this.learned) {
      if (fp === this.current || !this.configured) out.set(fp, root);
    }
    return [...out.values()].sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1));
  }

  private mutate(change: () => void): boolean {
    const before = this.cachedView?.version;
    change();
    const members = this.members();
    if (members.length === 0) {
      this.cachedView = undefined;
    } else {
      const version = crypto.createHash('sha256').update(members.map((r) => r.fingerprint).join(',')).digest('hex').slice(0, 16);
      if (version !== before) {
        this.cachedView = Object.freeze({ trustDomain: this.trustDomain, rootsPem: certificatesToPem(members.map((r) => r.cert)), version });
      }
    }
    return this.cachedView?.version !== before;
  }
}

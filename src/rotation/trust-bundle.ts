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
 * Pure: time comes in as an argument. Parsing, fingerprints and versions are src/identity/bundle's.
 */
import { certificateFingerprint, type TrustBundle, trustBundleFromCertificates } from '../identity/bundle.js';
import type { Certificate } from '../identity/certificate.js';
import type { TrustBundleView } from '../identity/svid.js';

const NO_ROOTS: readonly Certificate[] = Object.freeze([]);

export class TrustBundleState {
  private configured: TrustBundle | undefined;
  /** Roots learned from CA responses, with the expiry of the last SVID received under each. */
  private readonly learned = new Map<string, { readonly root: Certificate; retainUntil: number }>();
  private current: string | undefined;
  private bundle: TrustBundle | undefined;
  private cachedView: TrustBundleView | undefined;

  constructor(readonly trustDomain: string) {}

  /** Replaces the configured bundle (undefined: none configured). Returns whether the roots changed. */
  setConfigured(bundle: TrustBundle | undefined): boolean {
    return this.mutate(() => {
      this.configured = bundle;
    });
  }

  /**
   * Records the root that ends an accepted chain, whose leaf expires at leafNotAfter. The root
   * must already have passed the bundle checks (trustBundleFromCertificates), as accepted chains'
   * roots have.
   */
  learnFromCa(root: Certificate, leafNotAfter: number): boolean {
    return this.mutate(() => {
      const fp = certificateFingerprint(root);
      const prior = this.learned.get(fp);
      this.learned.set(fp, { root, retainUntil: Math.max(prior?.retainUntil ?? 0, leafNotAfter) });
      this.current = fp;
    });
  }

  /** Forgets earlier CA roots whose last SVID has expired. Returns whether the roots changed. */
  prune(now: number): boolean {
    const due = this.nextPruneAt();
    if (due === undefined || due > now) return false; // the watchdog calls this every tick
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

  /**
   * The roots in the bundle, for verifying chains against it. The same array until the roots
   * change: consumers (the ext_authz certificate cache) key on its identity.
   */
  roots(): readonly Certificate[] {
    return this.bundle?.roots ?? NO_ROOTS;
  }

  /** The roots of the configured bundle alone (undefined: none configured), which alone may issue our SVIDs. */
  configuredRoots(): readonly Certificate[] | undefined {
    return this.configured?.roots;
  }

  view(): TrustBundleView | undefined {
    return this.cachedView;
  }

  /** Configured roots, then learned ones, sorted by fingerprint so the PEM does not depend on arrival order. */
  private members(): Certificate[] {
    const out = new Map<string, Certificate>();
    this.configured?.roots.forEach((r, i) => out.set(this.configured!.fingerprints[i]!, r));
    for (const [fp, { root }] of this.learned) {
      if (fp === this.current || !this.configured) out.set(fp, root);
    }
    return [...out.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, r]) => r);
  }

  private mutate(change: () => void): boolean {
    change();
    const members = this.members();
    const next = members.length === 0 ? undefined : trustBundleFromCertificates(this.trustDomain, members, 'merged trust bundle');
    if (next?.version === this.bundle?.version) return false; // keep the old object, and its roots array
    this.bundle = next;
    this.cachedView = this.bundle && Object.freeze({ trustDomain: this.trustDomain, rootsPem: this.bundle.pem, version: this.bundle.version });
    return true;
  }
}

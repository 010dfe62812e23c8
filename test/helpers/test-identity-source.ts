/**
 * An IdentitySource backed by the real test PKI: every rotation generates a new key and has a root
 * sign a new leaf; the bundle can gain and lose roots; the SVID expires by the injected clock.
 * Used by the SDS tests and by the SDS benchmark's server harness.
 */
import type { IdentitySource, TrustBundleView, WorkloadSvid } from '../../src/identity/svid.js';
import type { Clock } from '../../src/lib/clock.js';
import { privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { type Issued, makeLeaf, makeRoot } from './pki.js';
import { trustBundleFromCertificates } from '../../src/identity/bundle.js';

export interface TestIdentityOptions {
  readonly clock: Clock;
  readonly trustDomain?: string;
  /** Defaults to spiffe://<trust domain>/ns/default/sa/app. */
  readonly spiffeId?: string;
  /** Lifetime of each leaf (default 1 h). */
  readonly ttlMs?: number;
  /** The first root (and issuer); a new one by default. Two sources given the same root share a trust domain. */
  readonly root?: Issued;
  /** Publish a bundle and a first SVID at once (default true). */
  readonly ready?: boolean;
}

export interface TestSvid extends WorkloadSvid {
  readonly leaf: Issued;
}

export class TestIdentitySource implements IdentitySource {
  readonly trustDomain: string;
  readonly spiffeId: string;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly listeners = new Set<() => void>();
  private roots: Issued[];
  private issuer: Issued;
  private svid: TestSvid | undefined;
  private bundle: TrustBundleView | undefined;

  constructor(options: TestIdentityOptions) {
    this.clock = options.clock;
    this.trustDomain = options.trustDomain ?? 'example.org';
    this.spiffeId = options.spiffeId ?? `spiffe://${this.trustDomain}/ns/default/sa/app`;
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.issuer = options.root ?? makeRoot(this.trustDomain);
    this.roots = [this.issuer];
    if (options.ready ?? true) {
      this.bundle = this.bundleOf(this.roots);
      this.svid = this.issue();
    }
  }

  currentSvid(): WorkloadSvid | undefined {
    const s = this.svid;
    return s && s.expiresAt > this.clock.now() ? s : undefined;
  }

  currentBundle(): TrustBundleView | undefined {
    return this.bundle;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  /** The SVID as last issued, even if expired. */
  latestSvid(): TestSvid | undefined {
    return this.svid;
  }

  /** The roots currently in the bundle. */
  bundleRoots(): readonly Issued[] {
    return this.roots;
  }

  /** A new key and a new leaf from the current issuer; notifies. */
  rotate(): TestSvid {
    return this.install(this.issue());
  }

  /** A new SVID from the current issuer, not yet installed (benchmarks time install alone). */
  issue(): TestSvid {
    const now = this.clock.now();
    const leaf = makeLeaf(this.issuer, this.spiffeId, { notBefore: new Date(now - 60_000), notAfter: new Date(now + this.ttlMs) });
    return {
      spiffeId: this.spiffeId,
      certChainPem: leaf.pem,
      privateKeyPem: privateKeyPkcs8Pem(leaf.key.privateKey),
      expiresAt: leaf.cert.notAfter.getTime(),
      version: leaf.cert.serial,
      leaf,
    };
  }

  /** Makes svid the current one; notifies. */
  install(svid: TestSvid): TestSvid {
    this.svid = svid;
    this.notify();
    return svid;
  }

  /** Publishes the bundle (the roots so far) if it was not published yet; notifies. */
  publishBundle(): TrustBundleView {
    this.bundle = this.bundleOf(this.roots);
    this.notify();
    return this.bundle;
  }

  /** Adds a new root (or the given one) to the bundle; notifies. Leaves keep coming from the old issuer until issueFrom. */
  addRoot(existing?: Issued): Issued {
    const root = existing ?? makeRoot(this.trustDomain, { commonName: `test root ${this.trustDomain} ${this.roots.length + 1}` });
    this.roots = [...this.roots, root];
    this.publishBundle();
    return root;
  }

  /** Future leaves are signed by root (which must be in the bundle). */
  issueFrom(root: Issued): void {
    if (!this.roots.includes(root)) throw new Error('issueFrom: root is not in the bundle');
    this.issuer = root;
  }

  /** Removes a root from the bundle; notifies. */
  removeRoot(root: Issued): void {
    this.roots = this.roots.filter((r) => r !== root);
    this.publishBundle();
  }

  /** Tells subscribers to look again (e.g. after the clock moved past the SVID's expiry). */
  notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private bundleOf(roots: readonly Issued[]): TrustBundleView {
    const b = trustBundleFromCertificates(this.trustDomain, roots.map((r) => r.cert), 'test bundle');
    return { trustDomain: this.trustDomain, rootsPem: b.pem, version: b.version };
  }
}

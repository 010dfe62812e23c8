/**
 * The secrets the server can serve, each as a feed shared by every stream that asked for it. A feed
 * encodes its content once per change and delivers it to all its subscribers in one pass. Feeds
 * exist only while someone subscribes: the last release drops the feed and closes its file watch.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { Rerun } from '../lib/rerun.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import type { Logger } from '../observability/logger.js';
import { type FileSecretPolicy, loadCertAndKey, type LoadedFileSecret, loadRoots } from './file-secrets.js';
import type { NamedCertificateSource } from './named-certs.js';
import type { IdentitySource } from '../identity/svid.js';
import type { SdsMetrics } from './metrics.js';
import { parseSecretName, type SecretKind, type SecretRef, unknownSecret } from './resource-names.js';
import { type EncodedSecret, encodeSecret } from './secret-encoding.js';

export interface SecretSubscriber {
  /** New content; called on every change after subscribe (the current content is read with Subscription.current). */
  deliver(secret: EncodedSecret): void;
  /** The secret can no longer be served; the subscription has already been released. */
  fail(error: MeshidError): void;
}

export interface Subscription {
  readonly kind: SecretKind;
  /** The content to serve now; undefined while it does not exist yet (the subscriber waits). */
  current(): EncodedSecret | undefined;
  release(): void;
}

/**
 * The partner CAs an operator trusts (--partner-cas), as the `partners` secret needs them; the
 * agent hands in its partner CA source.
 */
export interface PartnerRootsSource {
  /** Every partner CA certificate as PEM, and a version that changes exactly when they do. */
  current(): { readonly rootsPem: string; readonly version: string };
  /** Called after each change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

export interface CatalogDeps {
  readonly source: IdentitySource;
  /** Absent: the `partners` secret is not served. */
  readonly partners?: PartnerRootsSource | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: SdsMetrics;
  readonly fileDebounceMs: number;
  /** Where file-backed secrets may come from (--sds-file-dirs) and how large they may be. */
  readonly fileSecrets: FileSecretPolicy;
  /** The operator's named certificates (--named-cert), served as named:<name>. */
  readonly named?: NamedCertificateSource;
}

export interface CatalogUsage {
  readonly feeds: number;
  readonly subscribers: number;
  readonly fileWatches: number;
}

abstract class Feed {
  readonly subscribers = new Set<SecretSubscriber>();
  protected latest: EncodedSecret | undefined;

  constructor(
    readonly ref: SecretRef,
    protected readonly deps: CatalogDeps,
  ) {}

  /** What a new subscriber gets now. */
  current(): EncodedSecret | undefined {
    return this.latest;
  }

  protected publish(secret: EncodedSecret): void {
    this.latest = secret;
    const started = performance.now();
    let delivered = 0;
    for (const s of this.subscribers) {
      try {
        s.deliver(secret);
        delivered++;
      } catch (e) {
        // One broken stream must not stop the others from getting the new secret.
        this.deps.logger.error({ resource: this.ref.name, err: errorMessage(e) }, 'delivering a secret to a stream failed');
      }
    }
    this.deps.metrics.pushCompleted(this.ref.kind, delivered, performance.now() - started);
  }

  /** The first content is served to the subscriber that created the feed; later content is pushed. */
  protected update(initial: boolean, secret: EncodedSecret): void {
    if (initial) this.latest = secret;
    else this.publish(secret);
  }
}

/** default, ROOTCA, spiffe://<td> and partners: content comes from the identity source (and the partner CAs). */
class SourceFeed extends Feed {
  private expiresAt = Infinity;

  // Streams that already hold an SVID keep it (Envoy cannot be told to drop a secret), but a
  // stream that subscribes after it expired waits for the next one instead of receiving it.
  override current(): EncodedSecret | undefined {
    return this.expiresAt > this.deps.clock.now() ? this.latest : undefined;
  }

  /** Re-reads the source; publishes if the content changed. Returns an error if the feed cannot be served. */
  refresh(initial: boolean): MeshidError | undefined {
    const { source, clock } = this.deps;
    const ref = this.ref;
    if (ref.kind === 'workload') {
      const svid = source.currentSvid();
      // The source promises never to hand out an expired SVID; checking costs nothing.
      if (!svid || svid.expiresAt <= clock.now()) {
        this.latest = undefined;
        return undefined;
      }
      if (svid.version === this.latest?.version) return undefined;
      this.expiresAt = svid.expiresAt;
      this.update(initial, encodeSecret(ref.name, svid.version, { type: 'tls_certificate', certificateChainPem: svid.certChainPem, privateKeyPem: svid.privateKeyPem }));
      return undefined;
    }
    const bundle = source.currentBundle();
    if (!bundle) return undefined;
    if (ref.kind === 'trust-domain-bundle' && bundle.trustDomain !== ref.trustDomain) {
      return unknownSecret(ref.name, `this agent's trust domain is ${JSON.stringify(bundle.trustDomain)}, so its bundle is "spiffe://${bundle.trustDomain}"`);
    }
    if (ref.kind === 'partners') {
      // The mesh bundle first, then each partner CA: Envoy accepts a client certificate from any.
      // No CRL here: with one, OpenSSL and BoringSSL refuse a certificate whose issuer has no CRL
      // ("unable to get certificate CRL"), which is every partner CA's; ext_authz's revocation
      // check covers meshid-issued partner certificates on this listener instead.
      const partners = this.deps.partners!.current();
      const version = `${bundle.version}+${partners.version}`;
      if (version === this.latest?.version) return undefined;
      this.update(initial, encodeSecret(ref.name, version, { type: 'validation_context', trustedCaPem: bundle.rootsPem + partners.rootsPem }));
      return undefined;
    }
    if (bundle.version === this.latest?.version) return undefined;
    this.update(initial, encodeSecret(ref.name, bundle.version, { type: 'validation_context', trustedCaPem: bundle.rootsPem, crlPem: bundle.crlPem }));
    return undefined;
  }
}

/** named:<name>: a pair the operator configured (--named-cert), watched and validated by its source. */
class NamedFeed extends Feed {
  /** Re-reads the named pair; publishes if it changed. Returns an error if the agent holds no such pair. */
  refresh(initial: boolean): MeshidError | undefined {
    const ref = this.ref as SecretRef & { kind: 'named-cert' };
    const named = this.deps.named;
    const pair = named?.get(ref.certName);
    if (!pair) {
      const held = named?.names() ?? [];
      return unknownSecret(ref.name, held.length > 0
        ? `this agent holds the named certificates ${held.map((n) => JSON.stringify(`named:${n}`)).join(', ')}`
        : 'this agent holds no named certificates (--named-cert NAME=CERT,KEY)');
    }
    if (pair.version === this.latest?.version) return undefined;
    this.update(initial, encodeSecret(ref.name, pair.version, { type: 'tls_certificate', certificateChainPem: pair.certChainPem, privateKeyPem: pair.privateKeyPem }));
    return undefined;
  }
}

/**
 * file-cert and file-root: content read from disk (asynchronously, regular files under
 * --sds-file-dirs only), re-read when the watch sees a change. Subscribers wait for the first read;
 * if it fails they are failed with its error and the feed is dropped.
 */
class FileFeed extends Feed {
  private watch: PathWatch | undefined;
  private closed = false;
  /** Reads of the file: one at a time; a change during a read is read once more afterwards. */
  private readonly reads = new Rerun(() => this.reloadOnce(), { stopped: () => this.closed });

  constructor(
    ref: SecretRef & { kind: 'file-cert' | 'file-root' },
    deps: CatalogDeps,
    private readonly onFirstLoadFailed: (feed: FileFeed, error: MeshidError) => void,
  ) {
    super(ref, deps);
    void this.first();
  }

  private async first(): Promise<void> {
    const ref = this.ref as SecretRef & { kind: 'file-cert' | 'file-root' };
    let loaded: LoadedFileSecret;
    try {
      loaded = await this.load();
    } catch (e) {
      if (!this.closed) this.onFirstLoadFailed(this, e instanceof MeshidError ? e : new MeshidError('sds_file_unreadable', errorMessage(e)));
      return;
    }
    if (this.closed) return;
    this.publish(encodeSecret(ref.name, loaded.version, loaded.content));
    const paths = ref.kind === 'file-cert' ? [ref.certPath, ref.keyPath] : [ref.path];
    this.watch = watchPaths(paths, () => void this.reload(), {
      clock: this.deps.clock,
      debounceMs: this.deps.fileDebounceMs,
      onError: (e) => this.deps.logger.warn({ resource: ref.name, err: errorMessage(e) }, 'file watch error'),
    });
    // A change between the first read and the watch becoming ready would otherwise go unseen.
    void this.watch.ready.then(() => this.reload());
  }

  private load(): Promise<LoadedFileSecret> {
    const ref = this.ref as SecretRef & { kind: 'file-cert' | 'file-root' };
    const policy = this.deps.fileSecrets;
    return ref.kind === 'file-cert' ? loadCertAndKey(ref.certPath, ref.keyPath, () => this.deps.clock.now(), policy) : loadRoots(ref.path, policy);
  }

  private reload(): Promise<void> {
    return this.reads.run();
  }

  private async reloadOnce(): Promise<void> {
    let loaded: LoadedFileSecret;
    try {
      loaded = await this.load();
    } catch (e) {
      if (this.closed) return;
      this.deps.metrics.fileReloadFailed(this.ref.kind);
      this.deps.logger.warn(
        { resource: this.ref.name, err: errorMessage(e), servedVersion: this.latest?.version },
        'a watched secret file changed into something unusable; still serving the last good content',
      );
      return;
    }
    if (this.closed || loaded.version === this.latest?.version) return;
    this.deps.logger.info({ resource: this.ref.name, version: loaded.version }, 'secret file changed');
    this.publish(encodeSecret(this.ref.name, loaded.version, loaded.content));
  }

  async dispose(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
    await this.reads.idle();
  }
}

export class SecretCatalog {
  private readonly feeds = new Map<string, Feed>();
  private readonly disposing = new Set<Promise<void>>();
  /** File watches opened and not yet fully closed. */
  private openFileWatches = 0;
  private readonly unsubscribeSource: () => void;
  private readonly unsubscribeNamed: () => void;
  private readonly unsubscribePartners: () => void;
  private closed = false;

  constructor(private readonly deps: CatalogDeps) {
    this.unsubscribeSource = deps.source.subscribe(() => this.onSourceChange());
    this.unsubscribeNamed = deps.named?.subscribe(() => this.onNamedChange()) ?? (() => {});
    this.unsubscribePartners = deps.partners?.subscribe(() => this.onSourceChange()) ?? (() => {});
  }

  /** Subscribes to a secret by name; throws MeshidError for names that cannot be served. */
  subscribe(name: string, subscriber: SecretSubscriber): Subscription {
    if (this.closed) throw new MeshidError('sds_closing', 'the SDS server is shutting down');
    let feed = this.feeds.get(name);
    if (!feed) {
      feed = this.createFeed(parseSecretName(name));
      this.feeds.set(name, feed);
    }
    feed.subscribers.add(subscriber);
    const f = feed;
    let released = false;
    return {
      kind: f.ref.kind,
      current: () => f.current(),
      release: () => {
        if (released) return;
        released = true;
        f.subscribers.delete(subscriber);
        if (f.subscribers.size === 0 && this.feeds.get(name) === f) this.drop(f);
      },
    };
  }

  usage(): CatalogUsage {
    let subscribers = 0;
    for (const f of this.feeds.values()) subscribers += f.subscribers.size;
    return { feeds: this.feeds.size, subscribers, fileWatches: this.openFileWatches };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribeSource();
    this.unsubscribeNamed();
    this.unsubscribePartners();
    for (const f of [...this.feeds.values()]) this.drop(f);
    await Promise.all([...this.disposing]);
  }

  private createFeed(ref: SecretRef): Feed {
    if (ref.kind === 'file-cert' || ref.kind === 'file-root') {
      const feed = new FileFeed(ref, this.deps, (f, error) => {
        if (this.feeds.get(f.ref.name) === f) this.drop(f);
        const subscribers = [...f.subscribers];
        f.subscribers.clear();
        for (const sub of subscribers) sub.fail(error);
      });
      this.openFileWatches++;
      return feed;
    }
    if (ref.kind === 'partners' && !this.deps.partners) {
      throw unknownSecret(ref.name, `this agent trusts no partner CAs: start it with --partner-cas FILE to serve "${ref.name}"`);
    }
    const feed = ref.kind === 'named-cert' ? new NamedFeed(ref, this.deps) : new SourceFeed(ref, this.deps);
    const error = feed.refresh(true);
    if (error) throw error;
    return feed;
  }

  private drop(feed: Feed): void {
    this.feeds.delete(feed.ref.name);
    if (!(feed instanceof FileFeed)) return;
    const p = feed
      .dispose()
      .catch((e) => this.deps.logger.warn({ resource: feed.ref.name, err: errorMessage(e) }, 'closing a file watch failed'))
      .finally(() => {
        this.openFileWatches--;
        this.disposing.delete(p);
      });
    this.disposing.add(p);
  }

  private onNamedChange(): void {
    for (const feed of [...this.feeds.values()]) if (feed instanceof NamedFeed) feed.refresh(false);
  }

  private onSourceChange(): void {
    for (const feed of [...this.feeds.values()]) {
      if (!(feed instanceof SourceFeed)) continue;
      const error = feed.refresh(false);
      if (!error) continue;
      this.drop(feed);
      for (const s of [...feed.subscribers]) s.fail(error);
      feed.subscribers.clear();
    }
  }
}

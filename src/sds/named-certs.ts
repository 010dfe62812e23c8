/**
 * Named certificates (--named-cert NAME=CERT,KEY): certificate and key pairs the operator gives the
 * agent besides its own SVID, e.g. a client certificate a partner's backend issued for outbound
 * mTLS. Each pair is read with the file-secret reader (regular files only, asynchronously, under
 * the size cap), checked (the key matches the leaf, the leaf has not expired), watched, and read
 * again on every change; an edit that makes the pair unusable is logged and counted, and the last
 * good pair stays in service. Served over SDS as "named:NAME" (secret-catalog.ts) and written by
 * the file sink as NAME.pem and NAME.key.
 */
import path from 'node:path';
import { parseCertificatesPem } from '../identity/certificate.js';
import type { Clock } from '../lib/clock.js';
import { errorMessage, MeshidError, withContext } from '../lib/errors.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import { Rerun } from '../lib/rerun.js';
import type { Logger } from '../observability/logger.js';
import { loadCertAndKey } from './file-secrets.js';
import type { SdsMetrics } from './metrics.js';

export interface NamedCertSpec {
  readonly name: string;
  readonly certPath: string;
  readonly keyPath: string;
}

/** A pair as served: the chain (leaf first) and the key as PKCS#8. */
export interface NamedPair {
  readonly name: string;
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  /** A digest of the chain: changes exactly when the pair does. */
  readonly version: string;
}

/** What the SDS catalog and the file sink read. */
export interface NamedCertificateSource {
  get(name: string): NamedPair | undefined;
  names(): readonly string[];
  current(): readonly NamedPair[];
  /** listener runs after any pair changed; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

const RESYNC_MS = 60_000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The file sink's own files are svid.pem, svid.key and bundle.pem. */
const RESERVED = new Set(['svid', 'bundle']);

/** "NAME=CERT_PATH,KEY_PATH" (absolute paths); throws with the reason. */
export function parseNamedCertSpec(s: string): NamedCertSpec {
  const eq = s.indexOf('=');
  const name = eq < 0 ? '' : s.slice(0, eq).trim();
  const paths = eq < 0 ? [] : s.slice(eq + 1).split(',').map((p) => p.trim());
  if (!name || paths.length !== 2 || !paths[0] || !paths[1]) throw new Error(`expected NAME=CERT_PATH,KEY_PATH, got ${JSON.stringify(s)}`);
  if (!NAME_RE.test(name)) throw new Error(`name ${JSON.stringify(name)}: use 1 to 64 letters, digits, ".", "-" or "_", starting with a letter or digit`);
  if (RESERVED.has(name)) throw new Error(`name ${JSON.stringify(name)} is taken by the file sink's own ${name}.pem`);
  for (const p of paths) if (!path.isAbsolute(p)) throw new Error(`${name}: path ${JSON.stringify(p)} must be absolute`);
  return { name, certPath: path.normalize(paths[0]), keyPath: path.normalize(paths[1]) };
}

export function formatNamedCertSpec(s: NamedCertSpec): string {
  return `${s.name}=${s.certPath},${s.keyPath}`;
}

export interface NamedCertDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Pick<SdsMetrics, 'fileReloadFailed'>;
  /** Quiet period after a change before the files are read again (default 100 ms). */
  readonly debounceMs?: number;
}

/** Where a pair stands: served version and, after a bad edit, why the files on disk are not served. */
export interface NamedCertStatus {
  readonly name: string;
  readonly version: string;
  readonly notAfter: string;
  readonly lastError?: string;
}

class Entry {
  pair!: NamedPair;
  notAfter = 0;
  lastError: string | undefined;
  watch: PathWatch | undefined;
  /** Reads of the pair: one at a time; a change during a read is read once more afterwards. */
  readonly reads: Rerun;

  constructor(
    readonly spec: NamedCertSpec,
    readOnce: (e: Entry) => Promise<void>,
  ) {
    this.reads = new Rerun(() => readOnce(this));
  }

  async load(clock: Clock): Promise<NamedPair> {
    // The operator named these files in the agent's own configuration: any directory is allowed,
    // still regular files only, read asynchronously, within the size cap.
    const loaded = await loadCertAndKey(this.spec.certPath, this.spec.keyPath, () => clock.now(), { allowedDirs: [], configuredPaths: true });
    const content = loaded.content;
    if (content.type !== 'tls_certificate') throw new Error('unreachable: a certificate and key load as a tls_certificate');
    return { name: this.spec.name, certChainPem: content.certificateChainPem, privateKeyPem: content.privateKeyPem, version: loaded.version };
  }

}

export class NamedCertificates implements NamedCertificateSource {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private readonly log: Logger;
  private stopped = false;

  constructor(
    specs: readonly NamedCertSpec[],
    private readonly deps: NamedCertDeps,
  ) {
    this.log = deps.logger.child({ component: 'named-certs' });
    for (const s of specs) {
      if (this.entries.has(s.name)) throw new MeshidError('config_invalid', `--named-cert ${s.name} is given twice`, { key: 'namedCert' });
      this.entries.set(s.name, new Entry(s, (e) => this.reloadOnce(e)));
    }
  }

  /** Reads every pair (a pair that cannot be used fails the start, naming it) and starts watching. */
  async start(): Promise<void> {
    for (const e of this.entries.values()) {
      try {
        this.install(e, await e.load(this.deps.clock));
      } catch (err) {
        const me = err instanceof MeshidError ? err : new MeshidError('sds_file_unreadable', errorMessage(err));
        throw new MeshidError(me.code, `${e.spec.name}: ${me.message}`, { key: 'namedCert', cause: err });
      }
    }
    for (const e of this.entries.values()) {
      e.watch = watchPaths([e.spec.certPath, e.spec.keyPath], () => void e.reads.run(), {
        clock: this.deps.clock,
        debounceMs: this.deps.debounceMs ?? 100,
        // A missed event, or a pair that expired in place (said once, as any bad edit), is seen within a minute.
        resyncMs: RESYNC_MS,
        onError: (err) => this.log.warn({ namedCert: e.spec.name, err: errorMessage(err) }, 'file watch error'),
      });
    }
    await Promise.all([...this.entries.values()].map((e) => e.watch!.ready));
    // A change between the first read and the watch becoming ready would otherwise go unseen.
    await Promise.all([...this.entries.values()].map((e) => e.reads.run()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.listeners.clear();
    await Promise.all([...this.entries.values()].map(async (e) => {
      await e.watch?.close();
      await e.reads.idle();
    }));
  }

  get(name: string): NamedPair | undefined {
    return this.entries.get(name)?.pair;
  }

  names(): readonly string[] {
    return [...this.entries.keys()];
  }

  current(): readonly NamedPair[] {
    return [...this.entries.values()].map((e) => e.pair);
  }

  status(): readonly NamedCertStatus[] {
    return [...this.entries.values()].map((e) => ({
      name: e.spec.name,
      version: e.pair.version,
      notAfter: new Date(e.notAfter).toISOString(),
      ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
    }));
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private install(e: Entry, pair: NamedPair): void {
    e.pair = pair;
    e.lastError = undefined;
    // The leaf's expiry, for status: the first certificate of the chain the reader has checked.
    e.notAfter = parseCertificatesPem(pair.certChainPem, `named certificate ${e.spec.name}`)[0]!.notAfter.getTime();
  }

  private async reloadOnce(e: Entry): Promise<void> {
    if (this.stopped) return;
    let pair: NamedPair;
    try {
      pair = await e.load(this.deps.clock);
    } catch (err) {
      if (this.stopped) return;
      const message = errorMessage(err instanceof MeshidError ? withContext(err, e.spec.name) : err);
      if (message === e.lastError) return; // the same bad files seen again: said once already
      e.lastError = message;
      this.deps.metrics?.fileReloadFailed('named-cert');
      this.log.warn(
        { namedCert: e.spec.name, err: message, servedVersion: e.pair.version },
        `--named-cert ${e.spec.name}: the files changed into something unusable; still serving the last good pair`,
      );
      return;
    }
    if (this.stopped) return;
    const recovered = e.lastError !== undefined;
    if (pair.version === e.pair.version) {
      if (recovered) this.log.info({ namedCert: e.spec.name, version: pair.version }, `--named-cert ${e.spec.name}: usable again (unchanged)`);
      e.lastError = undefined;
      return;
    }
    this.install(e, pair);
    this.log.info({ namedCert: e.spec.name, version: pair.version }, `--named-cert ${e.spec.name}: new certificate and key`);
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (err) {
        this.log.error({ namedCert: e.spec.name, err: errorMessage(err) }, 'a named-certificate listener failed');
      }
    }
  }
}

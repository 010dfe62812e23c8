/**
 * The file sink (--svid-dir): the SVID and bundle as files, for workloads that read PEM files.
 *
 * - svid.pem (leaf first, then intermediates), svid.key (PKCS#8, 0600), bundle.pem (the roots);
 *   each written to a temporary file and renamed into place, so no reader sees half a file; all
 *   temporary files are written before any is renamed, so a full disk leaves the old set whole;
 * - order on a rotation: bundle first (new roots before a leaf they issued), then key, then the
 *   certificate; then, once all three are in place, the hook runs or the signal is sent (the
 *   reload race of spiffe-helper, #250, was a notification racing the writes);
 * - while the hook runs, the files stay as they are: a rotation that comes meanwhile is written
 *   when the hook has exited, then the hook runs again, so a hook never reads a key and a
 *   certificate from two different rotations;
 * - the bundle is rewritten whenever the roots change, not only with a new SVID (a stale CA
 *   bundle is spiffe-helper #367);
 * - a file that another process deletes is written again (watched, and checked on a resync).
 *
 * Named certificates (--named-cert) are written alongside as <name>.pem and <name>.key.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../lib/clock.js';
import { writeFileAtomically, writeFilesAtomically } from '../lib/atomic-file.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import type { Logger } from '../observability/logger.js';
import type { IdentitySource } from '../identity/svid.js';

export const SINK_FILES = { svid: 'svid.pem', key: 'svid.key', bundle: 'bundle.pem' } as const;

export interface FileSinkConfig {
  readonly dir: string;
  /** Run with /bin/sh -c after every write (MESHID_SVID_DIR in its environment). */
  readonly hook?: string;
  /** Sent to the pid read from pidFile after every write. */
  readonly signal?: NodeJS.Signals;
  readonly pidFile?: string;
  /** A hook that has not finished after this long is killed (default 60 s). */
  readonly hookTimeoutMs?: number;
}

/** A named certificate and key, as the sink writes them. */
export interface NamedPair {
  readonly name: string;
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  readonly version: string;
}

export interface FileSinkDeps {
  readonly source: IdentitySource;
  /** Named pairs to write too; subscribe tells of changes. */
  readonly named?: { current(): readonly NamedPair[]; subscribe(listener: () => void): () => void };
  readonly clock: Clock;
  readonly logger: Logger;
}

interface FileContent {
  readonly name: string;
  readonly content: string;
  readonly mode: number;
}

export class SvidFileSink {
  private readonly log: Logger;
  private readonly dir: string;
  private written = new Map<string, string>(); // file name -> content last written
  private writtenVersion: string | undefined;
  private hookRunning = false;
  /** A change came while the hook ran: write it when the hook is done. */
  private syncAfterHook = false;
  private watch: PathWatch | undefined;
  private unsubscribe: Array<() => void> = [];
  private stopped = false;
  /** Writes and notifications done, for tests and metrics. */
  writes = 0;
  notifications = 0;

  constructor(private readonly config: FileSinkConfig, private readonly deps: FileSinkDeps) {
    this.log = deps.logger.child({ component: 'svid-files', dir: config.dir });
    this.dir = path.resolve(config.dir);
  }

  async start(): Promise<void> {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.accessSync(this.dir, fs.constants.W_OK);
    } catch (e) {
      throw new MeshidError('svid_dir_unusable', `--svid-dir ${this.dir}: cannot create or write (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
    }
    this.unsubscribe.push(this.deps.source.subscribe(() => this.sync()));
    if (this.deps.named) this.unsubscribe.push(this.deps.named.subscribe(() => this.sync()));
    // Any event (space freed, a file deleted) and the resync also retry a write that failed.
    this.watch = watchPaths([this.dir], () => {
      this.sync();
      this.restoreDeleted();
    }, {
      clock: this.deps.clock,
      debounceMs: 50,
      resyncMs: 30_000,
      onError: (e) => this.log.warn({ err: errorMessage(e) }, 'svid dir watch error'),
    });
    await this.watch.ready;
    this.sync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    await this.watch?.close();
  }

  /** The files the current state asks for; undefined until an SVID and a bundle exist. */
  private desired(): { files: FileContent[]; version: string } | undefined {
    const svid = this.deps.source.currentSvid();
    const bundle = this.deps.source.currentBundle();
    if (!svid || !bundle) return undefined;
    const files: FileContent[] = [
      { name: SINK_FILES.bundle, content: bundle.rootsPem, mode: 0o644 },
      { name: SINK_FILES.key, content: svid.privateKeyPem, mode: 0o600 },
      { name: SINK_FILES.svid, content: svid.certChainPem, mode: 0o644 },
    ];
    const named = this.deps.named?.current() ?? [];
    for (const n of named) {
      files.push({ name: `${n.name}.key`, content: n.privateKeyPem, mode: 0o600 }, { name: `${n.name}.pem`, content: n.certChainPem, mode: 0o644 });
    }
    return { files, version: [svid.version, bundle.version, ...named.map((n) => `${n.name}=${n.version}`)].join('/') };
  }

  /** Writes what changed, then notifies the workload once. */
  private sync(): void {
    if (this.stopped) return;
    if (this.hookRunning) {
      this.syncAfterHook = true;
      return;
    }
    const want = this.desired();
    if (!want || want.version === this.writtenVersion) return;
    const changes = want.files.filter((f) => !(this.written.get(f.name) === f.content && fs.existsSync(path.join(this.dir, f.name))));
    const changed = changes.length;
    try {
      // All or nothing: a full disk must not leave a new key next to the old certificate.
      writeFilesAtomically(changes.map((f) => ({ file: path.join(this.dir, f.name), content: f.content, mode: f.mode })));
      for (const f of changes) this.written.set(f.name, f.content);
    } catch (e) {
      // Keep writtenVersion as it was, so the next change or resync tries again.
      this.log.error({ err: errorMessage(e) }, 'cannot write the SVID files; will retry');
      return;
    }
    this.writtenVersion = want.version;
    if (changed === 0) return;
    this.writes++;
    this.log.info({ version: want.version, files: want.files.map((f) => f.name) }, 'SVID files written');
    this.notify();
  }

  /** Rewrites any file someone deleted (same content: the workload is not notified again). */
  private restoreDeleted(): void {
    if (this.stopped) return;
    const want = this.desired();
    if (!want) return;
    for (const f of want.files) {
      const file = path.join(this.dir, f.name);
      if (fs.existsSync(file)) continue;
      try {
        writeFileAtomically(file, f.content, f.mode);
        this.written.set(f.name, f.content);
        this.log.warn({ file }, 'an SVID file was deleted; written again');
      } catch (e) {
        this.log.error({ file, err: errorMessage(e) }, 'cannot rewrite a deleted SVID file');
      }
    }
  }

  private notify(): void {
    if (this.config.hook) this.runHook();
    if (this.config.signal && this.config.pidFile) this.sendSignal(this.config.signal, this.config.pidFile);
  }

  /** One run at a time; sync() holds writes back while it runs. */
  private runHook(): void {
    this.hookRunning = true;
    const started = this.deps.clock.now();
    execFile('/bin/sh', ['-c', this.config.hook!], { env: { ...process.env, MESHID_SVID_DIR: this.dir }, timeout: this.config.hookTimeoutMs ?? 60_000 }, (err, _stdout, stderr) => {
      this.hookRunning = false;
      this.notifications++;
      if (err) this.log.error({ hook: this.config.hook, code: err.code, signal: err.signal, stderr: stderr.slice(-500) }, 'the --svid-hook command failed');
      else this.log.info({ hook: this.config.hook, ms: this.deps.clock.now() - started }, 'the --svid-hook command ran');
      if (this.syncAfterHook) {
        this.syncAfterHook = false;
        this.sync();
      }
    });
  }

  private sendSignal(signal: NodeJS.Signals, pidFile: string): void {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`it does not hold a process id above 1`);
    } catch (e) {
      this.log.error({ pidFile, err: errorMessage(e) }, `cannot send ${signal}: unusable --svid-pid-file`);
      return;
    }
    try {
      process.kill(pid, signal);
      this.notifications++;
      this.log.info({ pid, signal }, `sent ${signal} to the workload`);
    } catch (e) {
      this.log.error({ pid, signal, err: (e as NodeJS.ErrnoException).code ?? errorMessage(e) }, `cannot send ${signal} to the workload`);
    }
  }
}

/**
 * `--partner-cas FILE`, read and watched: the mapping file and every bundle it names. A change to
 * any of them is re-read as a whole; a mapping that no longer validates (or a bundle that no longer
 * parses) is logged and counted, and the last good mapping stays in force. At start-up a bad file
 * is fatal. Consumers (the ext_authz peer check, the `partners` SDS secret) read current() and
 * subscribe to swaps.
 */
import fs from 'node:fs';
import type { Clock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { type PathWatch, watchPaths } from '../lib/file-watch.js';
import type { Logger } from '../observability/logger.js';
import { buildPartnerTrust, parsePartnerMapping, type PartnerTrust } from './partner-cas.js';

export interface PartnerCaSource {
  /** The mapping in force. */
  current(): PartnerTrust;
  /** Called after each swap to a new mapping; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  close(): Promise<void>;
}

export interface PartnerCaFileOptions {
  readonly file: string;
  readonly trustDomain: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly debounceMs?: number;
  /** Re-read this often whatever the watch saw (default 30 s; 0: only on events). */
  readonly resyncMs?: number;
  /** A change was loaded and swapped in, or rejected (the last good mapping stays). */
  readonly onReload?: (result: 'loaded' | 'rejected') => void;
}

/** Reads and validates the mapping and its bundles; throws MeshidError partner_cas_invalid naming what is wrong. */
export function loadPartnerCas(file: string, trustDomain: string): PartnerTrust {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MeshidError('partner_cas_invalid', `${file}: cannot read the partner CA mapping: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`, { key: 'partnerCas' });
  }
  return buildPartnerTrust(parsePartnerMapping(text, file), (f) => fs.readFileSync(f, 'utf8'), trustDomain);
}

export async function startPartnerCas(options: PartnerCaFileOptions): Promise<PartnerCaSource> {
  const log = options.logger.child({ component: 'partner-cas' });
  let current = loadPartnerCas(options.file, options.trustDomain);
  log.info({ file: options.file, partners: current.partners.map((p) => p.name), version: current.version }, 'partner CA mapping loaded');
  const listeners = new Set<() => void>();
  let watch: PathWatch | undefined;
  let watched = '';
  let closed = false;

  const pathsOf = (t: PartnerTrust) => [options.file, ...t.partners.map((p) => p.bundle)];
  const rewatch = async (t: PartnerTrust) => {
    if (closed) return;
    const paths = pathsOf(t);
    const key = [...new Set(paths)].sort().join('\0');
    if (key === watched) return;
    watched = key;
    const old = watch;
    watch = watchPaths(paths, reload, {
      clock: options.clock,
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      resyncMs: options.resyncMs ?? 30_000,
      onError: (e) => log.warn({ err: errorMessage(e) }, 'partner CA file watch error'),
    });
    await old?.close();
    await watch.ready;
    if (closed) return;
    // A change between the read and this watch becoming ready would otherwise go unseen.
    reload();
  };

  function reload(): void {
    if (closed) return;
    let next: PartnerTrust;
    try {
      next = loadPartnerCas(options.file, options.trustDomain);
    } catch (e) {
      options.onReload?.('rejected');
      log.error({ file: options.file, err: errorMessage(e), version: current.version }, 'partner CA mapping changed into something unusable; keeping the last good mapping');
      return;
    }
    if (next.version === current.version) return;
    current = next;
    options.onReload?.('loaded');
    log.info({ file: options.file, partners: next.partners.map((p) => p.name), version: next.version }, 'partner CA mapping reloaded');
    for (const l of [...listeners]) {
      try {
        l();
      } catch (e) {
        log.error({ err: errorMessage(e) }, 'a partner CA mapping listener failed');
      }
    }
    void rewatch(next);
  }

  await rewatch(current);
  return {
    current: () => current,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      listeners.clear();
      await watch?.close();
    },
  };
}

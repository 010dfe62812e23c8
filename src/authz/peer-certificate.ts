/**
 * The peer certificate Envoy forwards (attributes.source.certificate, URL-encoded PEM): parsed,
 * and verified against the trust bundle when one is configured. Results are cached by the encoded
 * certificate, bounded, until the certificate or its path expires (failures for a short while),
 * and dropped whenever the bundle changes, so a steady stream of requests from one peer costs one
 * verification per certificate rotation.
 */
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { errorMessage } from '../lib/errors.js';
import type { PeerCertificateStatus } from './facts.js';

/**
 * The verification this module needs, shaped like verifyX509Svid in src/identity/svid-verify.ts
 * (which throws a MeshidError naming the rule when the chain does not verify).
 */
export type SvidVerifier = (
  chain: readonly Certificate[],
  roots: readonly Certificate[],
  options?: { trustDomain?: string; now?: number },
) => { readonly spiffeId: { readonly uri: string }; readonly expiresAt: Date };

export interface PeerCertificateOptions {
  /** The trust bundle; undefined: certificates are parsed but not verified. */
  readonly trustRoots: () => readonly Certificate[] | undefined;
  /** Required when trustRoots can return a bundle. */
  readonly verify?: SvidVerifier;
  readonly trustDomain?: string;
  readonly now: () => number;
  /** Cache bound (default 1024 certificates). */
  readonly maxEntries?: number;
  /** How long a failure is remembered (default 10 s): a not-yet-valid certificate may become valid. */
  readonly failureTtlMs?: number;
}

interface CacheEntry {
  readonly status: PeerCertificateStatus;
  readonly until: number;
}

export interface PeerCertificateChecker {
  check(urlEncodedPem: string): PeerCertificateStatus;
}

export function peerCertificateChecker(options: PeerCertificateOptions): PeerCertificateChecker {
  const maxEntries = options.maxEntries ?? 1024;
  const failureTtl = options.failureTtlMs ?? 10_000;
  const cache = new Map<string, CacheEntry>();
  let cachedFor: readonly Certificate[] | undefined;

  const compute = (encoded: string, roots: readonly Certificate[] | undefined, now: number): CacheEntry => {
    let chain: Certificate[];
    try {
      chain = parseCertificatesPem(decodeURIComponent(encoded), 'peer certificate');
    } catch (e) {
      return { status: { status: 'invalid', reason: `the peer certificate cannot be read: ${errorMessage(e)}` }, until: now + failureTtl };
    }
    const leaf = chain[0]!;
    if (!roots) {
      const uri = leaf.sans.find((n) => n.type === 'uri');
      return { status: { status: 'unverified', ...(uri && uri.type === 'uri' ? { uriSan: uri.value } : {}), serial: leaf.serial }, until: leaf.notAfter.getTime() };
    }
    if (!options.verify) {
      return { status: { status: 'invalid', reason: 'a trust bundle is configured but no verifier is available' }, until: now + failureTtl };
    }
    try {
      const v = options.verify(chain, roots, { ...(options.trustDomain ? { trustDomain: options.trustDomain } : {}), now });
      return { status: { status: 'verified', spiffeId: v.spiffeId.uri, serial: leaf.serial }, until: Math.min(v.expiresAt.getTime(), leaf.notAfter.getTime()) };
    } catch (e) {
      return { status: { status: 'invalid', reason: `the peer certificate does not verify: ${errorMessage(e)}` }, until: now + failureTtl };
    }
  };

  return {
    check(encoded) {
      const roots = options.trustRoots();
      if (roots !== cachedFor) {
        cache.clear(); // a new bundle: earlier answers no longer hold
        cachedFor = roots;
      }
      const now = options.now();
      const hit = cache.get(encoded);
      if (hit && now < hit.until) return hit.status;
      const entry = compute(encoded, roots, now);
      if (hit) cache.delete(encoded);
      else if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!); // oldest first
      cache.set(encoded, entry);
      return entry.status;
    },
  };
}

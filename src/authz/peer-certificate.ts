/**
 * The peer certificate Envoy forwards (attributes.source.certificate, URL-encoded PEM): parsed,
 * and verified against the trust bundle when one is configured. Results are cached by the encoded
 * certificate, bounded, until the certificate or its path expires (failures for a short while),
 * and dropped whenever the bundle or the partner CAs change, so a steady stream of requests from
 * one peer costs one verification per certificate rotation. What names the certificate in the
 * audit trail (serial, SHA-256 fingerprint, partner) is computed with it, once.
 *
 * With partner CAs (--partner-cas), a certificate the mesh bundle does not verify is checked
 * against the partner CAs whose bundle names its issuer: mapped to the partner's principal,
 * refused as unmapped, or refused as invalid; one no CA at all issued is invalid.
 */
import { createHash } from 'node:crypto';
import { partnerNameOf } from '../ca/partners.js';
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { tryParseSpiffeId } from '../identity/spiffe-id.js';
import { errorMessage } from '../lib/errors.js';
import type { PeerCertificateFacts, PeerCertificateStatus } from './facts.js';
import type { PartnerTrust } from './partner-cas.js';

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
  /** The partner CAs in force (--partner-cas); absent or undefined: none. */
  readonly partners?: () => PartnerTrust | undefined;
}

interface CacheEntry {
  readonly status: PeerCertificateStatus;
  readonly until: number;
}

export interface PeerCertificateChecker {
  check(urlEncodedPem: string): PeerCertificateStatus;
  /**
   * Whether a request that names a peer principal must come with the peer certificate: with
   * partner CAs, Envoy's principal of a partner certificate is whatever names the partner's CA
   * put in it, so only the certificate can say who the peer is.
   */
  certificateRequired(): boolean;
}

function factsOf(leaf: Certificate): PeerCertificateFacts {
  return { serial: leaf.serial, sha256: createHash('sha256').update(leaf.der).digest('hex'), notAfter: leaf.notAfter.getTime() };
}

/** The partner name of a certificate this mesh's CA issued in the partner namespace. */
function meshPartner(spiffeId: string, trustDomain: string | undefined): string | undefined {
  const td = trustDomain ?? (() => {
    const p = tryParseSpiffeId(spiffeId);
    return p.ok ? p.id.trustDomain : undefined;
  })();
  return td === undefined ? undefined : partnerNameOf(spiffeId, td);
}

export function peerCertificateChecker(options: PeerCertificateOptions): PeerCertificateChecker {
  const maxEntries = options.maxEntries ?? 1024;
  const failureTtl = options.failureTtlMs ?? 10_000;
  const cache = new Map<string, CacheEntry>();
  let cachedFor: readonly Certificate[] | undefined;
  let cachedPartners: PartnerTrust | undefined;
  const partnersOf = options.partners ?? (() => undefined);

  const compute = (encoded: string, roots: readonly Certificate[] | undefined, partners: PartnerTrust | undefined, now: number): CacheEntry => {
    let chain: Certificate[];
    try {
      chain = parseCertificatesPem(decodeURIComponent(encoded), 'peer certificate');
    } catch (e) {
      return { status: { status: 'invalid', reason: `the peer certificate cannot be read: ${errorMessage(e)}` }, until: now + failureTtl };
    }
    const leaf = chain[0]!;
    const facts = factsOf(leaf);
    if (!roots && !partners) {
      const uri = leaf.sans.find((n) => n.type === 'uri');
      return { status: { status: 'unverified', ...facts, ...(uri && uri.type === 'uri' ? { uriSan: uri.value } : {}) }, until: leaf.notAfter.getTime() };
    }
    let meshFailure: string | undefined;
    if (roots) {
      if (!options.verify) {
        return { status: { status: 'invalid', ...facts, reason: 'a trust bundle is configured but no verifier is available' }, until: now + failureTtl };
      }
      try {
        const v = options.verify(chain, roots, { ...(options.trustDomain ? { trustDomain: options.trustDomain } : {}), now });
        const partner = meshPartner(v.spiffeId.uri, options.trustDomain);
        return {
          status: { status: 'verified', ...facts, ...(partner ? { partner } : {}), spiffeId: v.spiffeId.uri },
          until: Math.min(v.expiresAt.getTime(), leaf.notAfter.getTime()),
        };
      } catch (e) {
        meshFailure = errorMessage(e);
      }
    }
    if (partners) {
      const p = partners.verify(chain, now);
      switch (p.kind) {
        case 'mapped':
          return { status: { status: 'mapped', ...facts, partner: p.partner, spiffeId: p.spiffeId }, until: p.expiresAt.getTime() };
        case 'unmapped':
          return { status: { status: 'unmapped', ...facts, partner: p.partner, reason: p.reason }, until: now + failureTtl };
        case 'invalid':
          return { status: { status: 'invalid', ...facts, partner: p.partner, reason: p.reason }, until: now + failureTtl };
        case 'none':
          return {
            status: {
              status: 'invalid',
              ...facts,
              reason: `the peer certificate was issued by no trusted CA: no partner CA (--partner-cas) names its issuer "${leaf.issuerText}"${meshFailure ? `, and against the trust bundle: ${meshFailure}` : ''}`,
            },
            until: now + failureTtl,
          };
      }
    }
    return { status: { status: 'invalid', ...facts, reason: `the peer certificate does not verify: ${meshFailure ?? 'no trust bundle'}` }, until: now + failureTtl };
  };

  return {
    check(encoded) {
      const roots = options.trustRoots();
      const partners = partnersOf();
      if (roots !== cachedFor || partners !== cachedPartners) {
        cache.clear(); // a new bundle or new partner CAs: earlier answers no longer hold
        cachedFor = roots;
        cachedPartners = partners;
      }
      const now = options.now();
      const hit = cache.get(encoded);
      if (hit && now < hit.until) return hit.status;
      const entry = compute(encoded, roots, partners, now);
      if (hit) cache.delete(encoded);
      else if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!); // oldest first
      cache.set(encoded, entry);
      return entry.status;
    },
    certificateRequired: () => partnersOf() !== undefined,
  };
}

/**
 * X.509-SVID verification: RFC 5280 path validation from the leaf to one of the trust anchors,
 * then the SPIFFE X509-SVID leaf rules, then the trust domain. Pure: no I/O, no timers; the time
 * of verification is a parameter.
 *
 * Path building tries every issuer candidate whose subject matches the child's issuer name (DER),
 * AKI/SKI matches first, so a bundle holding an old and a new root with the same name (a root
 * rotation) and chains sent unordered or with extra certificates still verify. When no path
 * works, the error reported is the one from the attempt that got closest to a root, preferring
 * candidates whose signature did verify (the real issuer) over mere name matches.
 */
import { MeshidError } from '../lib/errors.js';
import type { Certificate } from './certificate.js';
import { signatureSchemeByOid } from './keys.js';
import { OID } from './oids.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId, SpiffeIdError, tryParseSpiffeId } from './spiffe-id.js';

export interface VerifyOptions {
  /** When given, the SVID's SPIFFE ID must be in this trust domain ("example.org"). */
  trustDomain?: string;
  /** Time of verification, epoch ms; default Date.now(). */
  now?: number;
}

export interface VerifiedSvid {
  spiffeId: SpiffeId;
  leaf: Certificate;
  /** The validated path, leaf first, trust anchor last. */
  path: Certificate[];
  /** The earliest notAfter on the path: the chain stops verifying then. */
  expiresAt: Date;
}

/** Stable failure codes; the message says which certificate broke which rule. */
export type SvidFailureReason =
  | 'empty_chain'
  | 'no_roots'
  | 'untrusted'
  | 'path_too_long'
  | 'bad_signature'
  | 'signature_algorithm_unsupported'
  | 'signature_algorithm_mismatch'
  | 'expired'
  | 'not_yet_valid'
  | 'unknown_critical_extension'
  | 'issuer_not_v3'
  | 'issuer_not_ca'
  | 'issuer_key_usage_missing'
  | 'issuer_key_cert_sign_missing'
  | 'issuer_subject_empty'
  | 'path_length_exceeded'
  | 'leaf_is_ca'
  | 'leaf_key_usage_missing'
  | 'leaf_digital_signature_missing'
  | 'leaf_key_usage_forbidden'
  | 'leaf_uri_san_missing'
  | 'leaf_uri_san_multiple'
  | 'leaf_uri_san_not_spiffe'
  | 'leaf_spiffe_id_invalid'
  | 'leaf_spiffe_id_no_path'
  | 'leaf_san_not_critical'
  | 'trust_domain_mismatch'
  | 'ca_trust_domain_mismatch';

export class SvidVerificationError extends MeshidError {
  constructor(
    readonly reason: SvidFailureReason,
    message: string,
    /** The certificate that broke the rule, when one did. */
    readonly certificate?: Certificate,
  ) {
    super(`svid_${reason}`, message);
  }
}

/** Longest path we build, leaf and anchor included; real meshes use 2 to 4. */
export const MAX_PATH_CERTIFICATES = 8;
/** Bounds the work a hostile chain of many same-named certificates can cause. */
const MAX_SIGNATURE_CHECKS = 32;

/** Extensions whose semantics we enforce; any other extension marked critical rejects the certificate. */
const UNDERSTOOD_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);

type Role = 'leaf' | 'intermediate' | 'root';

/**
 * Verifies an X.509-SVID: `chain` is the leaf first, then intermediates in any order (extras are
 * ignored); `roots` are the trust anchors. Throws SvidVerificationError on any failure of the
 * certificates; a misuse (options.trustDomain not a trust domain name, options.now not a finite
 * number) throws a plain MeshidError of kind invalid_argument instead.
 */
export function verifyX509Svid(chain: readonly Certificate[], roots: readonly Certificate[], options: VerifyOptions = {}): VerifiedSvid {
  const now = options.now ?? Date.now();
  // NaN would compare false against both validity bounds and pass every date check.
  if (!Number.isFinite(now)) throw new MeshidError('verify_time_invalid', `invalid verification time ${String(options.now)}`);
  const trustDomain = options.trustDomain === undefined ? undefined : parseTrustDomain(options.trustDomain);
  const leaf = chain[0];
  if (!leaf) throw new SvidVerificationError('empty_chain', 'the certificate chain is empty: expected the leaf SVID first');
  if (roots.length === 0) throw new SvidVerificationError('no_roots', 'the trust bundle holds no root certificate');

  const { path, expiresAt } = pathTo(leaf, chain, roots, now);
  const spiffeId = checkLeafSvid(leaf);
  checkTrustDomain(spiffeId, path, trustDomain);
  return { spiffeId, leaf, path, expiresAt };
}

export interface VerifiedPath {
  /** The validated path, leaf first, trust anchor last. */
  readonly path: Certificate[];
  /** The earliest notAfter on the path. */
  readonly expiresAt: Date;
}

/**
 * RFC 5280 path validation alone (dates at `now`, signatures, CA flags, key usage, path length,
 * critical extensions), without the SPIFFE leaf rules: for certificates of a PKI that is not a
 * SPIFFE trust domain (a partner's own CA). Throws SvidVerificationError like verifyX509Svid.
 */
export function verifyCertificatePath(chain: readonly Certificate[], roots: readonly Certificate[], now: number): VerifiedPath {
  if (!Number.isFinite(now)) throw new MeshidError('verify_time_invalid', `invalid verification time ${String(now)}`);
  const leaf = chain[0];
  if (!leaf) throw new SvidVerificationError('empty_chain', 'the certificate chain is empty: expected the leaf first');
  if (roots.length === 0) throw new SvidVerificationError('no_roots', 'the trust bundle holds no root certificate');
  return pathTo(leaf, chain, roots, now);
}

function pathTo(leaf: Certificate, chain: readonly Certificate[], roots: readonly Certificate[], now: number): VerifiedPath {
  const leafProblem = ownRuleProblem(leaf, 'leaf', now);
  if (leafProblem) throw leafProblem;
  const path = new PathSearch(chain.slice(1), roots, now).run(leaf);
  let expiresAt = leaf.notAfter;
  for (const c of path) if (c.notAfter < expiresAt) expiresAt = c.notAfter;
  return { path, expiresAt };
}

// ---- path building ----------------------------------------------------------------------------

interface Candidate {
  readonly cert: Certificate;
  readonly anchor: boolean;
}

class PathSearch {
  private readonly intermediates: readonly Certificate[];
  private readonly ownProblems = new Map<Certificate, SvidVerificationError | undefined>();
  private best: { error: SvidVerificationError; rank: number } | undefined;
  private signatureChecks = 0;

  constructor(
    intermediates: readonly Certificate[],
    private readonly roots: readonly Certificate[],
    private readonly now: number,
  ) {
    // A chain that repeats a root or a certificate adds nothing to search.
    const seen: Certificate[] = [...roots];
    this.intermediates = intermediates.filter((c) => {
      if (seen.some((s) => s.der.equals(c.der))) return false;
      seen.push(c);
      return true;
    });
  }

  run(leaf: Certificate): Certificate[] {
    const path = this.extend([leaf]);
    if (path) return path;
    throw this.best!.error; // extend records a failure on every branch it abandons
  }

  private extend(path: readonly Certificate[]): Certificate[] | undefined {
    const child = path[path.length - 1]!;
    const index = path.length; // the position the issuer takes on the path
    const childRole: Role = path.length === 1 ? 'leaf' : 'intermediate';
    const candidates = this.candidates(child, path);
    if (candidates.length === 0) {
      this.record(2 * index, noIssuer(child, childRole, path));
      return undefined;
    }
    for (const { cert, anchor } of candidates) {
      const role: Role = anchor ? 'root' : 'intermediate';
      if (++this.signatureChecks > MAX_SIGNATURE_CHECKS) {
        // Inconclusive, so this message outranks whatever failed before.
        const detail = `gave up building a path after ${MAX_SIGNATURE_CHECKS} candidate issuers; the chain holds too many certificates with the same names`;
        this.record(Infinity, new SvidVerificationError('untrusted', detail));
        return undefined;
      }
      const sigProblem = signatureProblem(child, childRole, cert, role);
      if (sigProblem) {
        this.record(2 * index, sigProblem);
        continue;
      }
      const problem = this.ownProblem(cert, role) ?? pathLengthProblem(cert, role, path);
      if (problem) {
        this.record(2 * index + 1, problem);
        continue;
      }
      if (anchor) return [...path, cert];
      if (path.length + 1 >= MAX_PATH_CERTIFICATES) {
        this.record(2 * index + 1, new SvidVerificationError('path_too_long', `no path to a root within ${MAX_PATH_CERTIFICATES} certificates`, cert));
        continue;
      }
      const found = this.extend([...path, cert]);
      if (found) return found;
    }
    return undefined;
  }

  /** Certificates named as the child's issuer, not already on the path; AKI/SKI matches first, then anchors. */
  private candidates(child: Certificate, path: readonly Certificate[]): Candidate[] {
    const out: Array<Candidate & { rank: number }> = [];
    const consider = (cert: Certificate, anchor: boolean) => {
      if (!cert.subject.equals(child.issuer) || path.some((p) => p.der.equals(cert.der))) return;
      out.push({ cert, anchor, rank: keyIdRank(child, cert) * 2 + (anchor ? 0 : 1) });
    };
    for (const r of this.roots) consider(r, true);
    for (const c of this.intermediates) consider(c, false);
    return out.sort((a, b) => a.rank - b.rank);
  }

  private ownProblem(cert: Certificate, role: Role): SvidVerificationError | undefined {
    if (!this.ownProblems.has(cert)) this.ownProblems.set(cert, ownRuleProblem(cert, role, this.now));
    return this.ownProblems.get(cert);
  }

  private record(rank: number, error: SvidVerificationError): void {
    if (!this.best || rank > this.best.rank) this.best = { error, rank };
  }
}

/** 0: the child's AKI names the candidate's SKI; 1: cannot tell; 2: they differ. */
function keyIdRank(child: Certificate, candidate: Certificate): number {
  if (!child.authorityKeyId || !candidate.subjectKeyId) return 1;
  return child.authorityKeyId.equals(candidate.subjectKeyId) ? 0 : 2;
}

function isSelfIssued(c: Certificate): boolean {
  return c.subject.equals(c.issuer);
}

function noIssuer(child: Certificate, role: Role, path: readonly Certificate[]): SvidVerificationError {
  const what = describe(child, role);
  if (isSelfIssued(child)) {
    const detail = path.length > 1 ? 'is self-issued but is not a root in the trust bundle' : 'is self-issued; an SVID must be issued by a CA of the trust bundle';
    return new SvidVerificationError('untrusted', `${what} ${detail}`, child);
  }
  return new SvidVerificationError(
    'untrusted',
    `no trusted issuer for ${what}: its issuer "${child.issuerText}" is neither a root in the trust bundle nor an intermediate in the chain`,
    child,
  );
}

function signatureProblem(child: Certificate, childRole: Role, issuer: Certificate, issuerRole: Role): SvidVerificationError | undefined {
  let ok: boolean;
  try {
    ok = child.verifySignedBy(issuer.publicKey());
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    return new SvidVerificationError('bad_signature', `cannot check the signature of ${describe(child, childRole)}: ${detail}`, child);
  }
  if (ok) return undefined;
  return new SvidVerificationError(
    'bad_signature',
    `the signature of ${describe(child, childRole)} does not verify under the key of ${describe(issuer, issuerRole)}`,
    child,
  );
}

/**
 * RFC 5280 4.2.1.9: pathLenConstraint bounds the non-self-issued intermediates below the CA.
 * `below` is the path so far (leaf first); the leaf does not count.
 */
function pathLengthProblem(issuer: Certificate, role: Role, below: readonly Certificate[]): SvidVerificationError | undefined {
  const limit = issuer.basicConstraints?.pathLen;
  if (limit === undefined) return undefined;
  const count = below.slice(1).filter((c) => !isSelfIssued(c)).length;
  if (count <= limit) return undefined;
  return new SvidVerificationError(
    'path_length_exceeded',
    `${describe(issuer, role)} allows ${limit} intermediate CA${limit === 1 ? '' : 's'} below it (pathLenConstraint), but the path has ${count}`,
    issuer,
  );
}

// ---- rules for one certificate ------------------------------------------------------------------

/** Dates, algorithm consistency and critical extensions for every certificate; the CA rules for issuers. */
function ownRuleProblem(cert: Certificate, role: Role, now: number): SvidVerificationError | undefined {
  const what = describe(cert, role);
  if (now < cert.notBefore.getTime()) {
    return new SvidVerificationError('not_yet_valid', `${what} is not valid before ${iso(cert.notBefore)} (verification time ${iso(now)})`, cert);
  }
  if (now > cert.notAfter.getTime()) {
    return new SvidVerificationError('expired', `${what} expired at ${iso(cert.notAfter)} (verification time ${iso(now)})`, cert);
  }
  if (cert.tbsSignatureAlgorithm !== cert.signatureAlgorithm) {
    return new SvidVerificationError(
      'signature_algorithm_mismatch',
      `${what} names signature algorithm ${cert.tbsSignatureAlgorithm} in its signed part but ${cert.signatureAlgorithm} outside it`,
      cert,
    );
  }
  // A trust anchor's own signature is never checked, so its algorithm does not matter.
  if (role !== 'root' && !signatureSchemeByOid(cert.signatureAlgorithm)) {
    return new SvidVerificationError('signature_algorithm_unsupported', `${what} is signed with unsupported algorithm ${cert.signatureAlgorithm}`, cert);
  }
  const unknown = cert.extensions.find((e) => e.critical && !UNDERSTOOD_EXTENSIONS.has(e.oid));
  if (unknown) {
    return new SvidVerificationError('unknown_critical_extension', `${what} has a critical extension meshid does not process (${unknown.oid})`, cert);
  }
  if (role === 'leaf') return undefined;
  const ca = caProblem(cert);
  return ca && new SvidVerificationError(ca.reason, `${what} ${ca.detail}`, cert);
}

export interface CaProblem {
  readonly reason: 'issuer_not_v3' | 'issuer_not_ca' | 'issuer_key_usage_missing' | 'issuer_key_cert_sign_missing' | 'issuer_subject_empty';
  /** Completes a sentence that starts with the certificate's description. */
  readonly detail: string;
}

/**
 * Why a certificate cannot issue certificates, if it cannot. A CA without keyUsage is refused:
 * RFC 5280 4.2.1.3 requires the extension in CA certificates, OpenSSL's strict mode refuses
 * them, and accepting them would let a certificate never meant to sign act as a CA.
 */
export function caProblem(cert: Certificate): CaProblem | undefined {
  if (cert.version !== 3) {
    return { reason: 'issuer_not_v3', detail: `is an X.509 v${cert.version} certificate; a CA certificate must be v3 with basicConstraints cA=true` };
  }
  if (!cert.basicConstraints) return { reason: 'issuer_not_ca', detail: 'has no basicConstraints extension, so it is not a CA' };
  if (!cert.basicConstraints.ca) return { reason: 'issuer_not_ca', detail: 'is not a CA (basicConstraints cA=false)' };
  if (!cert.keyUsage) return { reason: 'issuer_key_usage_missing', detail: 'is a CA without a keyUsage extension (RFC 5280 requires keyCertSign)' };
  if (!cert.keyUsage.has('keyCertSign')) return { reason: 'issuer_key_cert_sign_missing', detail: 'is a CA whose keyUsage lacks keyCertSign' };
  if (cert.subjectEmpty) return { reason: 'issuer_subject_empty', detail: 'is a CA with an empty subject' };
  return undefined;
}

/** The first SPIFFE ID a certificate carries that is in another trust domain than td, if any. */
export function foreignTrustDomain(cert: Certificate, td: string): { readonly trustDomain: string; readonly uri: string } | undefined {
  for (const san of cert.sans) {
    if (san.type !== 'uri') continue;
    const parsed = tryParseSpiffeId(san.value);
    if (parsed.ok && parsed.id.trustDomain !== td) return { trustDomain: parsed.id.trustDomain, uri: san.value };
  }
  return undefined;
}

// ---- SPIFFE rules -------------------------------------------------------------------------------

/** The X509-SVID standard's leaf rules; returns the leaf's SPIFFE ID. */
function checkLeafSvid(leaf: Certificate): SpiffeId {
  const what = describe(leaf, 'leaf');
  const fail = (reason: SvidFailureReason, detail: string) => new SvidVerificationError(reason, `${what} ${detail}`, leaf);
  if (leaf.basicConstraints?.ca) throw fail('leaf_is_ca', 'is a CA certificate (basicConstraints cA=true); an SVID leaf must have cA=false');
  const ku = leaf.keyUsage;
  if (!ku) throw fail('leaf_key_usage_missing', 'has no keyUsage extension; an SVID leaf must have keyUsage with digitalSignature');
  if (!ku.has('digitalSignature')) throw fail('leaf_digital_signature_missing', 'has keyUsage without digitalSignature');
  const forbidden = (['keyCertSign', 'cRLSign'] as const).filter((u) => ku.has(u));
  if (forbidden.length > 0) throw fail('leaf_key_usage_forbidden', `has keyUsage ${forbidden.join(' and ')}, which an SVID leaf must not have`);
  const uris = leaf.sans.filter((n) => n.type === 'uri');
  if (uris.length === 0) throw fail('leaf_uri_san_missing', 'has no URI subjectAltName; an SVID carries its SPIFFE ID as exactly one URI SAN');
  if (uris.length > 1) {
    throw fail('leaf_uri_san_multiple', `has ${uris.length} URI subjectAltNames (${uris.map((u) => JSON.stringify(u.value)).join(', ')}); an SVID has exactly one`);
  }
  const uri = uris[0]!.value;
  if (!/^spiffe:/i.test(uri)) throw fail('leaf_uri_san_not_spiffe', `has URI SAN ${JSON.stringify(uri)}, which is not a SPIFFE ID`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uri);
  } catch (e) {
    if (!(e instanceof SpiffeIdError)) throw e;
    throw fail('leaf_spiffe_id_invalid', `has a URI SAN that is ${e.message}`);
  }
  // X509-SVID 3: a leaf's SPIFFE ID has a non-root path; the bare trust domain names no workload.
  if (id.path === '') throw fail('leaf_spiffe_id_no_path', `has SPIFFE ID ${id.uri}, the bare trust domain; a leaf SVID's ID must have a path`);
  if (leaf.subjectEmpty && !leaf.sanCritical) {
    throw fail('leaf_san_not_critical', 'has an empty subject, so its subjectAltName extension must be critical (RFC 5280 4.2.1.6)');
  }
  return id;
}

/**
 * The leaf's ID must be in the expected trust domain, and every CA on the path that names a
 * trust domain (a SPIFFE ID URI SAN, as SPIRE and meshid roots carry) must name the leaf's: a CA
 * of another trust domain cannot vouch for this one even if an operator put it in the bundle.
 * CAs with no SPIFFE ID are judged by bundle membership alone.
 */
function checkTrustDomain(id: SpiffeId, path: readonly Certificate[], expected: string | undefined): void {
  if (expected !== undefined && id.trustDomain !== expected) {
    throw new SvidVerificationError(
      'trust_domain_mismatch',
      `the SVID's ID ${id.uri} is in trust domain "${id.trustDomain}", but "${expected}" is required`,
      path[0],
    );
  }
  path.forEach((ca, i) => {
    if (i === 0) return;
    const foreign = foreignTrustDomain(ca, id.trustDomain);
    if (foreign) {
      throw new SvidVerificationError(
        'ca_trust_domain_mismatch',
        `${describe(ca, i === path.length - 1 ? 'root' : 'intermediate')} belongs to trust domain "${foreign.trustDomain}" (${foreign.uri}) and cannot vouch for ${id.uri}`,
        ca,
      );
    }
  });
}

// ---- messages -----------------------------------------------------------------------------------

/** How messages name a certificate: its subject, else its URI SAN (SVIDs have empty subjects), else its serial. */
export function certificateLabel(cert: Certificate): string {
  if (cert.subjectText) return `"${cert.subjectText}"`;
  const uri = cert.sans.find((n) => n.type === 'uri');
  return uri ? `"${uri.value}"` : `with serial ${cert.serial}`;
}

function describe(cert: Certificate, role: Role): string {
  return `${role} ${certificateLabel(cert)}`;
}

function iso(t: Date | number): string {
  return new Date(t).toISOString().replace('.000Z', 'Z');
}

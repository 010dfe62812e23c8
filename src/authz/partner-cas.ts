/**
 * Partner CAs the operator trusts but does not run (`--partner-cas FILE`): each partner's own CA
 * bundle, and how a certificate it issued maps to the partner's principal
 * spiffe://<trust-domain>/partner/<name>, so the policies written for partners certified by
 * `meshid ca partner issue` apply unchanged. Pure: the file's text and the bundles' text come in,
 * a PartnerTrust comes out; partner-cas-file.ts reads and watches the files.
 *
 *   partners:
 *     - name: globex                      # the principal is <td>/partner/globex
 *       bundle: globex-ca.pem             # PEM CA certificates; relative to the mapping file
 *       match:                            # any one entry maps a certificate the bundle verifies
 *         - cn: api-client.globex.example # the subject's one CN, exactly
 *         - o: Globex Corp                # the subject's one O, exactly
 *         - dns: gw.globex.example        # a DNS subjectAltName (case-insensitive)
 *         - sha256: 5f:3a:...             # the SHA-256 of the certificate's DER (colons optional)
 *
 * A peer certificate is checked against a partner's bundle with RFC 5280 path validation at the
 * injected time (signatures, validity, CA flags, path length), then as a TLS client certificate
 * (not a CA; keyUsage with digitalSignature and extendedKeyUsage with clientAuth when present),
 * then against that partner's match entries. Several partners may share a bundle; a certificate
 * two of them claim is refused, never given to the first.
 */
import { parseDocument } from 'yaml';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { type Certificate, certificatesToPem, parseCertificatesPem } from '../identity/certificate.js';
import { nameAttributes } from '../identity/name.js';
import { OID } from '../identity/oids.js';
import { caProblem, certificateLabel, verifyCertificatePath } from '../identity/svid-verify.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { checkPartnerName, partnerSpiffeId } from '../ca/partners.js';

export type PartnerMatchKind = 'cn' | 'o' | 'dns' | 'sha256';
const MATCH_KINDS: readonly PartnerMatchKind[] = ['cn', 'o', 'dns', 'sha256'];

export interface PartnerMatch {
  readonly kind: PartnerMatchKind;
  /** As written for cn and o; lower-case for dns; lower-case hex without colons for sha256. */
  readonly value: string;
}

export interface PartnerCaSpec {
  readonly name: string;
  /** Absolute path of the partner's CA bundle. */
  readonly bundle: string;
  readonly match: readonly PartnerMatch[];
}

export interface PartnerMapping {
  readonly file: string;
  readonly partners: readonly PartnerCaSpec[];
}

const TOP_FIELDS = new Set(['partners']);
const PARTNER_FIELDS = new Set(['name', 'bundle', 'match']);
const SHA256_RE = /^[0-9a-f]{64}$/;
const DNS_RE = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

function bad(file: string, where: string, why: string): MeshidError {
  return new MeshidError('partner_cas_invalid', `${file}: ${where}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The mapping file's text, validated strictly: every error names the file, the entry and the field. */
export function parsePartnerMapping(text: string, file: string): PartnerMapping {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) throw bad(file, 'YAML', doc.errors[0]!.message);
  const top = doc.toJS() as unknown;
  if (!isObject(top)) throw bad(file, 'top level', 'expected a mapping with a "partners" list');
  for (const k of Object.keys(top)) if (!TOP_FIELDS.has(k)) throw bad(file, k, 'unknown field; the file has one field, "partners"');
  const list = top.partners;
  if (!Array.isArray(list)) throw bad(file, 'partners', 'required: a list of {name, bundle, match}');
  const names = new Set<string>();
  const dir = path.dirname(file);
  const partners = list.map((raw, i): PartnerCaSpec => {
    let where = `partners[${i}]`;
    if (!isObject(raw)) throw bad(file, where, 'expected a mapping with name, bundle and match');
    if (typeof raw.name === 'string') where = `${where} (${raw.name})`;
    for (const k of Object.keys(raw)) if (!PARTNER_FIELDS.has(k)) throw bad(file, `${where}.${k}`, 'unknown field; expected name, bundle, match');
    if (typeof raw.name !== 'string') throw bad(file, `${where}.name`, 'required: the partner name');
    try {
      checkPartnerName(raw.name);
    } catch (e) {
      throw bad(file, `${where}.name`, errorMessage(e));
    }
    if (names.has(raw.name)) throw bad(file, `${where}.name`, `partner ${JSON.stringify(raw.name)} is listed twice; give one entry several match lines`);
    names.add(raw.name);
    if (typeof raw.bundle !== 'string' || raw.bundle === '') throw bad(file, `${where}.bundle`, "required: the path of the partner's PEM CA bundle");
    if (!Array.isArray(raw.match) || raw.match.length === 0) throw bad(file, `${where}.match`, 'required: a non-empty list of {cn | o | dns | sha256: value}');
    const match = raw.match.map((m, j) => matchEntry(m, file, `${where}.match[${j}]`));
    return { name: raw.name, bundle: path.resolve(dir, raw.bundle), match };
  });
  return { file, partners };
}

function matchEntry(m: unknown, file: string, where: string): PartnerMatch {
  if (!isObject(m)) throw bad(file, where, 'expected a mapping with one of cn, o, dns, sha256');
  const keys = Object.keys(m);
  const unknown = keys.find((k) => !(MATCH_KINDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw bad(file, `${where}.${unknown}`, 'unknown field; a match entry is one of cn, o, dns, sha256');
  if (keys.length !== 1) throw bad(file, where, `exactly one of cn, o, dns, sha256 (found ${keys.length === 0 ? 'none' : keys.join(', ')})`);
  const kind = keys[0] as PartnerMatchKind;
  const v = m[kind];
  if (typeof v !== 'string' || v.trim() === '') throw bad(file, `${where}.${kind}`, 'expected a non-empty string');
  if (v !== v.trim()) throw bad(file, `${where}.${kind}`, `${JSON.stringify(v)} has leading or trailing spaces`);
  if (kind === 'sha256') {
    const hex = v.toLowerCase().replace(/:/g, '');
    if (!SHA256_RE.test(hex)) throw bad(file, `${where}.sha256`, `${JSON.stringify(v)} is not a SHA-256 fingerprint (64 hex digits, colons allowed)`);
    return { kind, value: hex };
  }
  if (kind === 'dns') {
    const name = v.toLowerCase();
    if (!DNS_RE.test(name)) throw bad(file, `${where}.dns`, `${JSON.stringify(v)} is not a DNS name (wildcards are not matched)`);
    return { kind, value: name };
  }
  return { kind, value: v };
}

/** One partner, its bundle parsed. */
export interface PartnerCa extends PartnerCaSpec {
  readonly spiffeId: string;
  readonly roots: readonly Certificate[];
}

/** What a partner CA check found for one certificate chain. */
export type PartnerVerdict =
  /** No partner's bundle names the chain's issuer: not a partner certificate. */
  | { readonly kind: 'none' }
  | { readonly kind: 'mapped'; readonly partner: string; readonly spiffeId: string; readonly expiresAt: Date }
  | { readonly kind: 'unmapped'; readonly partner: string; readonly reason: string }
  | { readonly kind: 'invalid'; readonly partner: string; readonly reason: string };

export class PartnerTrust {
  /** Every partner root, once, as PEM: what the `partners` SDS secret adds to the mesh bundle. */
  readonly rootsPem: string;
  /** Changes exactly when the partners, their match entries or their roots do. */
  readonly version: string;

  constructor(
    readonly trustDomain: string,
    readonly partners: readonly PartnerCa[],
  ) {
    const roots: Certificate[] = [];
    for (const p of partners) for (const r of p.roots) if (!roots.some((s) => s.der.equals(r.der))) roots.push(r);
    this.rootsPem = certificatesToPem(roots);
    const h = createHash('sha256').update(trustDomain);
    for (const p of partners) {
      h.update(`\0${p.name}\0${JSON.stringify(p.match)}`);
      for (const r of p.roots) h.update(r.der);
    }
    this.version = h.digest('hex').slice(0, 16);
  }

  /** The chain (leaf first, as Envoy forwards it) against every partner whose bundle names its issuer. */
  verify(chain: readonly Certificate[], now: number): PartnerVerdict {
    const leaf = chain[0];
    if (!leaf) return { kind: 'none' };
    const issuers = chain.map((c) => c.issuer);
    const mapped: Array<PartnerVerdict & { kind: 'mapped' }> = [];
    let unmapped: (PartnerVerdict & { kind: 'unmapped' }) | undefined;
    let invalid: (PartnerVerdict & { kind: 'invalid' }) | undefined;
    for (const p of this.partners) {
      if (!p.roots.some((r) => issuers.some((i) => r.subject.equals(i)))) continue;
      let expiresAt: Date;
      try {
        expiresAt = verifyCertificatePath(chain, p.roots, now).expiresAt;
      } catch (e) {
        invalid ??= { kind: 'invalid', partner: p.name, reason: `the peer certificate does not verify against the CA of partner ${p.name}: ${errorMessage(e)}` };
        continue;
      }
      const clientProblem = clientCertificateProblem(leaf);
      if (clientProblem) {
        invalid ??= { kind: 'invalid', partner: p.name, reason: `the peer certificate ${certificateLabel(leaf)} of partner ${p.name} ${clientProblem}` };
        continue;
      }
      if (p.match.some((m) => matches(m, leaf))) mapped.push({ kind: 'mapped', partner: p.name, spiffeId: p.spiffeId, expiresAt });
      else unmapped ??= { kind: 'unmapped', partner: p.name, reason: `the peer certificate (${namesOf(leaf)}) verifies against the CA of partner ${p.name} but matches none of its match entries` };
    }
    if (mapped.length > 1) {
      return { kind: 'invalid', partner: mapped[0]!.partner, reason: `the peer certificate (${namesOf(leaf)}) maps to partners ${mapped.map((m) => m.partner).join(' and ')}; make their match entries exclusive` };
    }
    return mapped[0] ?? unmapped ?? invalid ?? { kind: 'none' };
  }
}

/** Why a verified leaf cannot authenticate a TLS client, if it cannot. */
function clientCertificateProblem(leaf: Certificate): string | undefined {
  if (leaf.basicConstraints?.ca) return 'is a CA certificate (basicConstraints cA=true), not a client certificate';
  if (leaf.keyUsage && !leaf.keyUsage.has('digitalSignature')) return 'has keyUsage without digitalSignature, so it cannot sign a TLS handshake';
  const eku = leaf.extKeyUsage;
  if (eku && !eku.includes(OID.clientAuth) && !eku.includes(OID.anyExtendedKeyUsage)) return 'has extendedKeyUsage without clientAuth';
  return undefined;
}

function attribute(leaf: Certificate, oid: string): string | undefined {
  const values = nameAttributes(leaf.subject).filter((a) => a.oid === oid);
  return values.length === 1 ? values[0]!.value : undefined;
}

function fingerprintOf(leaf: Certificate): string {
  return createHash('sha256').update(leaf.der).digest('hex');
}

function matches(m: PartnerMatch, leaf: Certificate): boolean {
  switch (m.kind) {
    case 'cn':
      return attribute(leaf, OID.commonName) === m.value;
    case 'o':
      return attribute(leaf, OID.organization) === m.value;
    case 'dns':
      return leaf.sans.some((n) => n.type === 'dns' && n.value.toLowerCase() === m.value);
    case 'sha256':
      return fingerprintOf(leaf) === m.value;
  }
}

/** What a mapping could have matched, for the operator reading a deny. */
function namesOf(leaf: Certificate): string {
  const parts: string[] = [];
  const subject = nameAttributes(leaf.subject);
  for (const a of subject) if (a.oid === OID.commonName || a.oid === OID.organization) parts.push(`${a.oid === OID.commonName ? 'CN' : 'O'}=${JSON.stringify(a.value)}`);
  for (const n of leaf.sans) if (n.type === 'dns') parts.push(`DNS=${JSON.stringify(n.value)}`);
  parts.push(`sha256 ${fingerprintOf(leaf)}`);
  return parts.join(', ');
}

/**
 * The mapping with each partner's bundle parsed (text from readBundle, by absolute path). Every
 * bundle must hold at least one CA certificate and nothing else; errors name the file and entry.
 */
export function buildPartnerTrust(mapping: PartnerMapping, readBundle: (file: string) => string, trustDomain: string): PartnerTrust {
  const partners = mapping.partners.map((p, i): PartnerCa => {
    const where = `partners[${i}] (${p.name}).bundle`;
    let text: string;
    try {
      text = readBundle(p.bundle);
    } catch (e) {
      throw bad(mapping.file, where, `cannot read ${p.bundle}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
    }
    let roots: Certificate[];
    try {
      roots = parseCertificatesPem(text, p.bundle);
    } catch (e) {
      throw bad(mapping.file, where, errorMessage(e));
    }
    roots.forEach((r, j) => {
      const problem = caProblem(r);
      if (problem) throw bad(mapping.file, where, `${p.bundle}, certificate ${j + 1} ${certificateLabel(r)} ${problem.detail}; a partner bundle holds CA certificates only`);
    });
    return { ...p, spiffeId: partnerSpiffeId(trustDomain, p.name).uri, roots };
  });
  return new PartnerTrust(trustDomain, partners);
}

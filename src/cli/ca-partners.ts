/**
 * The CA operator's offline commands on the CA state directory: `meshid ca partner issue`,
 * `meshid ca partner list`, `meshid ca revoke` and `meshid ca crl`. They need a CA that exists
 * (started once with `meshid ca`), never create one, and write one audit line per issuance,
 * refusal and revocation before they report success.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AUDIT_FILE, AuditLog, operatorName } from '../ca/audit.js';
import { Authority } from '../ca/authority.js';
import { CRL_FILE, DEFAULT_CRL_VALIDITY_MS, publishCrl, STATE_LOCK_FILE, STATE_LOCK_TIMEOUT_MS } from '../ca/crl-publisher.js';
import { caOptions } from '../ca/options.js';
import { issuePartnerCertificate, partnerSpiffeId } from '../ca/partners.js';
import { normalizeSerial, parseRevocationReason, Registry, type RevocationReason } from '../ca/registry.js';
import { loadOrCreateState, STATE_FILES } from '../ca/state.js';
import { formatDuration, opt } from '../config/options.js';
import { certificateFingerprint } from '../identity/bundle.js';
import { parseSpiffeId } from '../identity/spiffe-id.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { type HeldLock, lockSync } from '../lib/file-lock.js';
import { isMeshidError, MeshidError } from '../lib/errors.js';
import { type CommandIO, defineCommand } from './command.js';

export { CRL_FILE, DEFAULT_CRL_VALIDITY_MS };
export const DEFAULT_PARTNER_TTL_MS = 90 * 86_400_000;

const stateOptions = {
  trustDomain: caOptions.trustDomain,
  stateDir: caOptions.stateDir,
  auditLog: caOptions.auditLog,
};

const crlValidity = caOptions.crlValidity;

interface OpenCa {
  readonly authority: Authority;
  readonly registry: Registry;
  readonly audit: AuditLog;
  readonly stateDir: string;
  /** The state directory's writer lock, held until the command ends. */
  readonly lock: HeldLock;
}

/** Opens the CA state for a command that writes it; the caller releases ca.lock when done. */
function openCa(config: { trustDomain: string; stateDir: string; auditLog?: string | undefined }, io: CommandIO, now: number): OpenCa {
  const { stateDir } = config;
  const has = (f: string) => fs.existsSync(path.join(stateDir, f));
  if (!has(STATE_FILES.rootKey) && !has(STATE_FILES.intermediateKey)) {
    throw new MeshidError('ca_state_invalid', `state dir ${stateDir}: no CA key (${STATE_FILES.rootKey} or ${STATE_FILES.intermediateKey}); start meshid ca once with this --state-dir, or point --state-dir at the CA's`);
  }
  // A running meshid ca re-signs its CRL under the same lock: neither loses the other's registry update.
  const lock = lockSync(path.join(stateDir, STATE_LOCK_FILE), STATE_LOCK_TIMEOUT_MS);
  try {
    return openLocked(config, io, now, lock);
  } catch (e) {
    lock.release();
    throw e;
  }
}

function openLocked(config: { trustDomain: string; stateDir: string; auditLog?: string | undefined }, io: CommandIO, now: number, lock: HeldLock): OpenCa {
  const { stateDir } = config;
  const state = loadOrCreateState(stateDir, config.trustDomain, now);
  for (const w of state.warnings) io.stderr.write(`warning: ${w}\n`);
  // The TTL policy is the partner command's own (--ttl); the Authority here only signs and bounds validity.
  const authority = new Authority(config.trustDomain, state.material, { defaultTtlMs: DEFAULT_PARTNER_TTL_MS, maxTtlMs: DEFAULT_PARTNER_TTL_MS });
  return { authority, registry: Registry.load(stateDir), audit: new AuditLog(config.auditLog ?? path.join(stateDir, AUDIT_FILE), operatorName(io.env), () => now), stateDir, lock };
}

export const partnerIssue = defineCommand({
  name: 'ca partner issue',
  summary: 'sign a partner\'s CSR: a client certificate for spiffe://<td>/partner/<name>',
  fileAndEnv: false,
  details: `
Offline, on the CA state directory. The certificate names spiffe://<trust-domain>/partner/<name>
(policies say principals: ["<trust-domain>/partner/<name>"]), is for TLS clients only (EKU
clientAuth, cA=false), and follows the CA's key rules (EC P-256/P-384, RSA 2048-8192). A CSR
subject (O, CN only) is copied into the certificate with --allow-subject, refused without it.
Writes <out>/<name>.crt (the certificate), <out>/<name>-chain.pem (certificate and intermediates,
what the partner presents) and <out>/ca-bundle.pem (the root, to verify the gateway), records the
certificate in <state-dir>/registry.json and appends an audit line.`,
  options: {
    name: opt.string('name', { description: 'partner name: 1-63 lowercase letters, digits or "-"', metavar: 'NAME', required: true }),
    csr: opt.string('csr', { description: 'the partner\'s PEM PKCS#10 CSR', metavar: 'FILE', required: true }),
    ttl: opt.duration('ttl', { description: 'lifetime of the certificate', default: DEFAULT_PARTNER_TTL_MS, min: 60_000, max: 398 * 86_400_000 }),
    allowSubject: opt.bool('allow-subject', { description: 'copy the CSR\'s subject (O and CN) into the certificate', default: false }),
    out: opt.string('out', { description: 'directory the certificate, chain and CA bundle are written to', metavar: 'DIR', default: '.' }),
    crlValidity,
    ...stateOptions,
  },
  async run({ config }, io) {
    const now = Date.now();
    const ca = openCa(config, io, now);
    try {
      const id = partnerSpiffeId(config.trustDomain, config.name).uri;
      let csrPem: string;
      try {
        csrPem = fs.readFileSync(config.csr, 'utf8');
      } catch (e) {
        throw new MeshidError('input_unreadable', `cannot read the CSR ${config.csr}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      let issued;
      try {
        issued = issuePartnerCertificate(ca.authority, { csrPem, name: config.name, ttlMs: config.ttl, allowSubject: config.allowSubject, now });
      } catch (e) {
        if (isMeshidError(e)) ca.audit.write({ event: 'refuse', identity: id, partner: config.name, reason: e.code, error: e.message });
        throw e;
      }
      const fingerprint = certificateFingerprint(issued);
      const wasRevokedIdentity = ca.registry.revokedIdentities(now).includes(issued.spiffeId);
      ca.registry.data.issued.push({
        serial: issued.serial,
        name: config.name,
        spiffeId: issued.spiffeId,
        subject: issued.subject,
        fingerprint,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        issuedAt: new Date(now).toISOString(),
        issuedBy: operatorName(io.env),
      });
      ca.registry.save();
      ca.audit.write({ event: 'issue', identity: issued.spiffeId, partner: config.name, serial: issued.serial, fingerprint, subject: issued.subject, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString() });
      // Onboarded again after an offboarding: a new CRL tells agents the identity is no longer revoked as a whole.
      if (wasRevokedIdentity) publishCrl(ca, now, config.crlValidity, 'identity re-issued');
      fs.mkdirSync(config.out, { recursive: true });
      const files = { cert: path.join(config.out, `${config.name}.crt`), chain: path.join(config.out, `${config.name}-chain.pem`), bundle: path.join(config.out, 'ca-bundle.pem') };
      writeFileAtomically(files.cert, issued.certPem, 0o644);
      writeFileAtomically(files.chain, issued.chainPem, 0o644);
      writeFileAtomically(files.bundle, issued.bundlePem, 0o644);
      io.stdout.write(
        [
          `issued ${issued.spiffeId}${issued.subject ? ` (${issued.subject})` : ''}`,
          `  serial      ${issued.serial}`,
          `  sha256      ${fingerprint}`,
          `  not after   ${issued.notAfter.toISOString()}${issued.cappedByIssuer ? ' (cut to the CA certificate\'s expiry)' : ''}`,
          `  certificate ${files.cert}`,
          `  chain       ${files.chain}`,
          `  CA bundle   ${files.bundle}`,
          '',
        ].join('\n'),
      );
      return 0;
    } finally {
      ca.lock.release();
    }
  },
});

export const partnerList = defineCommand({
  name: 'ca partner list',
  summary: 'list partner certificates this CA issued: serial, name, SPIFFE ID, not-after, revoked',
  fileAndEnv: false,
  options: {
    expiring: opt.duration('expiring', { description: 'only certificates not revoked that expire within this time (e.g. 30d)', min: 0 }),
    json: opt.bool('json', { description: 'one JSON object per line instead of a table', default: false }),
    trustDomain: caOptions.trustDomain,
    stateDir: caOptions.stateDir,
  },
  async run({ config }, io) {
    const now = Date.now();
    const registry = Registry.load(config.stateDir);
    let rows = registry.data.issued.map((r) => ({ ...r, revoked: registry.revokedSerial(r.serial)?.revokedAt ?? null }));
    if (config.expiring !== undefined) {
      const until = now + config.expiring;
      rows = rows.filter((r) => r.revoked === null && Date.parse(r.notAfter) <= until);
    }
    if (config.json) {
      for (const r of rows) io.stdout.write(`${JSON.stringify({ serial: r.serial, name: r.name, spiffeId: r.spiffeId, notAfter: r.notAfter, revoked: r.revoked, fingerprint: r.fingerprint })}\n`);
      return 0;
    }
    const table = [['SERIAL', 'NAME', 'SPIFFE ID', 'NOT AFTER', 'REVOKED'], ...rows.map((r) => [r.serial, r.name, r.spiffeId, r.notAfter, r.revoked ?? (Date.parse(r.notAfter) <= now ? 'expired' : 'no')])];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) io.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
    if (config.expiring !== undefined && rows.length === 0) io.stderr.write(`no partner certificate expires within ${formatDuration(config.expiring)}\n`);
    return 0;
  },
});

export const revoke = defineCommand({
  name: 'ca revoke',
  summary: 'revoke a certificate by serial, or every recorded certificate of a SPIFFE ID, and publish a new CRL',
  fileAndEnv: false,
  details: `
Offline, on the CA state directory. Records the revocation in <state-dir>/registry.json (written
to a temporary file, fsynced, renamed: a crash leaves the old record or the new), appends an audit
line per certificate, then signs a new CRL into <state-dir>/crl.pem. --serial takes any serial this
CA signed (workload SVIDs too, as printed in the agent's logs); --id revokes the partner
certificates recorded for that SPIFFE ID.`,
  options: {
    serial: opt.string('serial', { description: 'serial number (hex; colons allowed)', metavar: 'HEX' }),
    id: opt.string('id', { description: 'SPIFFE ID whose recorded certificates are revoked', metavar: 'SPIFFE-ID' }),
    reason: opt.checked('reason', { description: 'RFC 5280 reason: keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, ...', metavar: 'REASON', default: 'unspecified' as RevocationReason }, parseRevocationReason),
    crlValidity,
    ...stateOptions,
  },
  async run({ config }, io) {
    if ((config.serial === undefined) === (config.id === undefined)) throw new MeshidError('usage', 'give exactly one of --serial and --id');
    const now = Date.now();
    const ca = openCa(config, io, now);
    try {
      const who = operatorName(io.env);
      const targets: Array<{ serial: string; spiffeId?: string; name?: string }> = [];
      if (config.serial !== undefined) {
        const serial = normalizeSerial(config.serial);
        const rec = ca.registry.bySerial(serial);
        targets.push({ serial, ...(rec ? { spiffeId: rec.spiffeId, name: rec.name } : {}) });
      } else {
        const id = parseSpiffeId(config.id!).uri;
        const recs = ca.registry.issuedFor(id);
        if (recs.length === 0) throw new MeshidError('revocation_target_unknown', `no certificate of ${id} is recorded in ${ca.stateDir}/registry.json; revoke by --serial`);
        for (const r of recs) targets.push({ serial: r.serial, spiffeId: r.spiffeId, name: r.name });
      }
      const fresh = targets.filter((t) => !ca.registry.revokedSerial(t.serial));
      for (const t of targets) if (!fresh.includes(t)) io.stderr.write(`serial ${t.serial} was already revoked\n`);
      for (const t of fresh) {
        ca.registry.data.revoked.push({ serial: t.serial, ...(t.spiffeId ? { spiffeId: t.spiffeId } : {}), reason: config.reason, revokedAt: new Date(now).toISOString(), revokedBy: who });
      }
      ca.registry.save();
      for (const t of fresh) {
        const rec = ca.registry.bySerial(t.serial);
        ca.audit.write({
          event: 'revoke',
          serial: t.serial,
          reason: config.reason,
          ...(t.spiffeId ? { identity: t.spiffeId } : {}),
          ...(t.name ? { partner: t.name } : {}),
          ...(rec ? { notBefore: rec.notBefore, notAfter: rec.notAfter, fingerprint: rec.fingerprint } : {}),
        });
        io.stdout.write(`revoked ${t.serial}${t.spiffeId ? ` (${t.spiffeId})` : ''}, reason ${config.reason}\n`);
      }
      const crl = publishCrl(ca, now, config.crlValidity);
      io.stdout.write(`CRL ${crl.crlNumber} written to ${crl.file}, next update ${crl.nextUpdate.toISOString()}\n`);
      return 0;
    } finally {
      ca.lock.release();
    }
  },
});

export const crl = defineCommand({
  name: 'ca crl',
  summary: 'sign a fresh CRL of every recorded revocation into <state-dir>/crl.pem',
  fileAndEnv: false,
  details: 'Run it before the current CRL\'s nextUpdate (from cron, say) when no meshid ca process keeps it fresh.',
  options: { crlValidity, ...stateOptions },
  async run({ config }, io) {
    const now = Date.now();
    const ca = openCa(config, io, now);
    try {
      const published = publishCrl(ca, now, config.crlValidity);
      io.stdout.write(`CRL ${published.crlNumber} written to ${published.file}, next update ${published.nextUpdate.toISOString()}\n`);
      return 0;
    } finally {
      ca.lock.release();
    }
  },
});

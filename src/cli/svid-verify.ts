/**
 * `meshid svid verify`: checks an X.509-SVID chain file against a trust bundle file.
 * Exit 0 valid (summary on stdout), 1 invalid (reason on stderr; also a bundle of another trust domain
 * than --trust-domain), 2 unreadable input or bad flags.
 */
import fs from 'node:fs';
import { opt, valueError } from '../config/options.js';
import { parseTrustBundle, certificateFingerprint } from '../identity/bundle.js';
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { certificateLabel, SvidVerificationError, verifyX509Svid } from '../identity/svid-verify.js';
import { isMeshidError, MeshidError } from '../lib/errors.js';
import { type CommandIO, defineCommand } from './command.js';

const NAME = 'svid verify';

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 timestamp ("2025-01-31T12:00:00Z", "2025-01-31T13:00:00+01:00") as epoch ms. */
export function parseRfc3339(s: string): number {
  const m = RFC3339_RE.exec(s);
  const ms = m ? Date.parse(s.replace(' ', 'T')) : NaN;
  // Date.parse rolls 2025-02-30 over to March; refuse dates that do not exist.
  const day = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!m || Number.isNaN(ms) || day?.getUTCDate() !== Number(m[3]) || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60) {
    throw valueError(`expected an RFC 3339 time like 2025-01-31T12:00:00Z, got ${JSON.stringify(s)}`);
  }
  return ms;
}

function readInput(path: string, what: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (code ?? (e as Error).message);
    throw new MeshidError('input_unreadable', `cannot read the ${what} ${path}: ${why}`);
  }
}

/** "in 3h12m", "in 5m", "now": how far off a time is. */
export function untilText(ms: number): string {
  if (ms <= 0) return 'now';
  const minutes = Math.floor(ms / 60_000);
  const [d, h, m] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60), minutes % 60];
  if (d > 0) return `in ${d}d${h}h`;
  if (h > 0) return `in ${h}h${m}m`;
  return minutes > 0 ? `in ${m}m` : 'in under a minute';
}

function rootSummary(root: Certificate): string {
  return `root ${certificateLabel(root)} sha256:${certificateFingerprint(root)}`;
}

export default defineCommand({
  name: NAME,
  summary: 'verify an X.509-SVID chain (leaf first, then any intermediates) against a trust bundle',
  positionals: 'LEAF.pem',
  fileAndEnv: false,
  details: `
Checks the full certificate path from the leaf to a root of the bundle (signatures, validity
dates, CA flags, key usage, path length, critical extensions), then the SPIFFE X509-SVID leaf
rules (one spiffe:// URI SAN, cA=false, digitalSignature without keyCertSign/cRLSign), then the
trust domain. Exit status: 0 valid (one-line summary on stdout), 1 invalid (the reason on
stderr, including a bundle or SVID of another trust domain than --trust-domain), 2 unreadable
input (a file that cannot be read or is not PEM certificates) or bad flags.`,
  options: {
    bundle: opt.string('bundle', {
      description: "PEM file of the trust domain's root certificates (the trust bundle)",
      metavar: 'FILE',
      required: true,
    }),
    trustDomain: opt.checked('trust-domain', { description: 'trust domain the SVID must belong to, e.g. example.org', metavar: 'TD', required: true }, parseTrustDomain),
    at: opt.checked('at', { description: 'verify at this time instead of now (RFC 3339, e.g. 2025-01-31T12:00:00Z)', metavar: 'TIME' }, parseRfc3339),
  },
  async run({ config, positionals }, io: CommandIO) {
    const fail = (code: number, message: string) => {
      io.stderr.write(`meshid ${NAME}: ${message}\n`);
      return code;
    };
    if (positionals.length !== 1) {
      return fail(2, `expected one LEAF.pem file (the leaf first, then any intermediates), got ${positionals.length}\nRun "meshid ${NAME} --help" for usage.`);
    }
    const leafPath = positionals[0]!;
    let verified;
    const now = config.at ?? Date.now();
    try {
      const bundle = parseTrustBundle(config.trustDomain, readInput(config.bundle, 'trust bundle'), config.bundle);
      const chain = parseCertificatesPem(readInput(leafPath, 'certificate file'), leafPath);
      verified = verifyX509Svid(chain, bundle.roots, { trustDomain: bundle.trustDomain, now });
    } catch (e) {
      if (e instanceof SvidVerificationError) return fail(1, `invalid (${e.reason}): ${e.message}`);
      // Exit 2 for input that cannot be read or parsed, 1 for input that was read and is not valid (a bundle of another trust domain).
      if (isMeshidError(e)) return fail(e.exitCode, e.exitCode === 1 ? `invalid (${e.code}): ${e.message}` : e.message);
      throw e;
    }
    const root = verified.path[verified.path.length - 1]!;
    const expires = verified.expiresAt;
    io.stdout.write(
      `valid: ${verified.spiffeId.uri}, expires ${expires.toISOString().replace('.000Z', 'Z')} (${untilText(expires.getTime() - now)}), ${rootSummary(root)}\n`,
    );
    return 0;
  },
});

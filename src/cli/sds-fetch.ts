/**
 * `meshid sds fetch --socket S [--name N]... [--out DIR] [--watch]`: subscribes to a running
 * agent's SDS server as Envoy would (one StreamSecrets stream per name, a node id, every response
 * checked and ACKed, or NACKed if Envoy would reject it) and prints what it got: for a certificate
 * the SPIFFE ID, serial, validity, key and chain; for a validation context the bundle's
 * certificates with their SHA-256 fingerprints. --out writes the PEM files (names as the file
 * sink's: svid.pem, svid.key, bundle.pem). Without --watch it exits after the first answer to
 * every name; with --watch it prints (and writes) each new version until SIGINT or SIGTERM.
 *
 * Exit status: 0 every name answered; 1 the agent refused a name (unknown, unusable file) or sent
 * something Envoy would reject; 2 bad flags, no SDS server at the socket, or no answer in --timeout.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { SDS_NAMED_CERT_PREFIX, SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../config/defaults.js';
import { opt } from '../config/options.js';
import { certificateFingerprint } from '../identity/bundle.js';
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { describeKey, keyInfoText } from '../identity/keys.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { errorMessage } from '../lib/errors.js';
import { type AcceptedSecret, type DecodedSecret, sdsClient, type SecretStreamCall, streamSecret } from '../sds/client.js';
import { type CommandIO, defineCommand } from './command.js';
import { untilText } from './svid-verify.js';

const NAME = 'sds fetch';
const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_UNREACHABLE = 2;
const GRPC_UNAVAILABLE = 14;
const STATUS_NAMES: Record<number, string> = { 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND', 7: 'PERMISSION_DENIED', 9: 'FAILED_PRECONDITION', 12: 'UNIMPLEMENTED', 13: 'INTERNAL', 14: 'UNAVAILABLE' };
/** --watch: how long to wait before resubscribing after the agent went away, doubling up to the cap. */
const RECONNECT_MS = [500, 10_000] as const;

/**
 * The file names --out writes for a secret name, without extension: "default" is svid (svid.pem,
 * svid.key), "ROOTCA" is bundle (bundle.pem), as the file sink (--svid-dir) names them; a named
 * certificate "named:NAME" is NAME (NAME.pem, NAME.key, as the file sink writes it too); a trust
 * domain's bundle "spiffe://TD" is TD.bundle; any other name is the name with characters other
 * than letters, digits, ".", "-" and "_" replaced by "_".
 */
export function outputBase(name: string): string {
  if (name === SDS_WORKLOAD_SECRET) return 'svid';
  if (name === SDS_ROOT_SECRET) return 'bundle';
  if (name.startsWith(SDS_NAMED_CERT_PREFIX)) return name.slice(SDS_NAMED_CERT_PREFIX.length);
  if (name.startsWith('spiffe://')) return `${name.slice('spiffe://'.length)}.bundle`;
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._]+/, '') || 'secret';
}

interface CertificateView {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notAfter: string;
  readonly spiffeId?: string;
  readonly sha256: string;
}

export interface SecretView {
  readonly name: string;
  readonly version: string;
  readonly type: 'tls_certificate' | 'validation_context';
  /** tls_certificate: the leaf's URI SAN (null when it has none). */
  readonly spiffeId?: string | null;
  readonly serial?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly key?: string;
  /** tls_certificate: the chain, leaf first; validation_context: the trusted certificates. */
  readonly certificates: readonly CertificateView[];
  readonly files?: readonly string[];
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

function certView(c: Certificate): CertificateView {
  const uri = c.sans.find((n) => n.type === 'uri')?.value;
  return { subject: c.subjectText, issuer: c.issuerText, serial: c.serial, notAfter: iso(c.notAfter), ...(uri ? { spiffeId: uri } : {}), sha256: certificateFingerprint(c) };
}

/** What a secret holds, or throws with the reason Envoy would NACK it for. */
export function viewOf(secret: DecodedSecret, version: string): SecretView {
  if (secret.tlsCertificate) {
    const chain = parseCertificatesPem(secret.tlsCertificate.certificateChain, `${secret.name} certificate_chain`);
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey(secret.tlsCertificate.privateKey);
    } catch {
      throw new Error(`${secret.name}: private_key is not a usable PEM private key`);
    }
    const leaf = chain[0]!;
    if (!new crypto.X509Certificate(leaf.der).checkPrivateKey(key)) throw new Error(`${secret.name}: private_key does not match the leaf certificate`);
    return {
      name: secret.name,
      version,
      type: 'tls_certificate',
      spiffeId: leaf.sans.find((n) => n.type === 'uri')?.value ?? null,
      serial: leaf.serial,
      notBefore: iso(leaf.notBefore),
      notAfter: iso(leaf.notAfter),
      key: keyInfoText(describeKey(key)),
      certificates: chain.map(certView),
    };
  }
  const roots = parseCertificatesPem(secret.validationContext!.trustedCa, `${secret.name} trusted_ca`);
  return { name: secret.name, version, type: 'validation_context', certificates: roots.map(certView) };
}

function label(c: CertificateView): string {
  return c.subject ? `"${c.subject}"` : (c.spiffeId ?? `serial ${c.serial}`);
}

function renderText(v: SecretView, now: number): string {
  const lines = [`${v.name}: ${v.type}, version ${v.version}`];
  const n = v.certificates.length;
  if (v.type === 'tls_certificate') {
    lines.push(
      `  SPIFFE ID  ${v.spiffeId ?? '(none: no URI SAN)'}`,
      `  serial     ${v.serial}`,
      `  not after  ${v.notAfter} (${untilText(Date.parse(v.notAfter!) - now)})`,
      `  key        ${v.key}`,
      `  chain      ${n} certificate${n === 1 ? '' : 's'}, leaf first`,
    );
    v.certificates.forEach((c, i) => lines.push(`    [${i}] ${c.spiffeId ?? label(c)}, issuer "${c.issuer}"`));
  } else {
    lines.push(`  bundle     ${n} certificate${n === 1 ? '' : 's'}`);
    for (const c of v.certificates) lines.push(`    sha256:${c.sha256}  ${label(c)}  not after ${c.notAfter}`);
  }
  if (v.files) lines.push(`  wrote      ${v.files.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** Writes a secret's PEM files into dir (each atomically; keys 0600); returns what was written. */
function writeFiles(dir: string, secret: DecodedSecret): string[] {
  const base = path.join(dir, outputBase(secret.name));
  if (secret.tlsCertificate) {
    // The key first, so that a reader that sees a new certificate finds its key already in place.
    writeFileAtomically(`${base}.key`, secret.tlsCertificate.privateKey, 0o600);
    writeFileAtomically(`${base}.pem`, secret.tlsCertificate.certificateChain, 0o644);
    return [`${base}.pem`, `${base}.key (0600)`];
  }
  writeFileAtomically(`${base}.pem`, secret.validationContext!.trustedCa, 0o644);
  return [`${base}.pem`];
}

function statusText(s: grpc.StatusObject): string {
  return `${STATUS_NAMES[s.code] ?? `status ${s.code}`}: ${s.details}`;
}

export default defineCommand({
  name: NAME,
  summary: "subscribe to an agent's SDS server as Envoy would and print (and optionally write) what it serves",
  fileAndEnv: false,
  details: `
Opens one SDS v3 StreamSecrets stream per --name with a node id, checks each response as Envoy
does and ACKs it (NACKs what Envoy would reject), and prints what it holds: for a certificate
the SPIFFE ID, serial, not-after, key and chain; for a validation context each certificate's
SHA-256 fingerprint and subject. --out DIR writes PEM files named as the file sink names them:
"default" to svid.pem and svid.key (0600), "ROOTCA" to bundle.pem, "named:NAME" to NAME.pem and
NAME.key, "spiffe://TD" to TD.bundle.pem, other names to the name with "/", ":" and "~" turned into "_". Without --watch it exits once every name has answered;
with --watch it prints (and writes) every new version until SIGINT or SIGTERM.
Exit status: 0 every name answered; 1 the agent refused a name (unknown, unusable file) or sent
a response Envoy would reject; 2 bad flags, nothing serving SDS at --socket, or no answer within
--timeout.`,
  options: {
    socket: opt.string('socket', { description: "the agent's SDS Unix socket (--sds-socket)", metavar: 'PATH', required: true }),
    name: opt.list('name', { description: 'a secret name: default, ROOTCA, spiffe://<td>, named:<name>, file-cert:..., file-root:... (repeatable)', metavar: 'NAME', default: [SDS_WORKLOAD_SECRET, SDS_ROOT_SECRET] }),
    out: opt.string('out', { description: 'write each secret as PEM files into this directory (created 0700 if missing)', metavar: 'DIR' }),
    watch: opt.bool('watch', { description: 'keep the streams open and print every new version until SIGINT/SIGTERM', default: false }),
    json: opt.bool('json', { description: 'print one JSON object per response instead of text', default: false }),
    timeout: opt.duration('timeout', { description: 'how long to wait for the first answer to each name (0: no limit)', default: 10_000, min: 0 }),
    node: opt.string('node', { description: 'the node id sent on each stream, as Envoy sends its --service-node', metavar: 'ID', default: 'meshid-sds-fetch' }),
  },
  async run({ config }, io) {
    const names = [...new Set(config.name)];
    const fail = (code: number, msg: string) => {
      io.stderr.write(`meshid ${NAME}: ${msg}\n`);
      return code;
    };
    if (names.length === 0) return fail(EXIT_UNREACHABLE, '--name: give at least one secret name');
    if (config.out !== undefined) {
      const bases = new Map<string, string>();
      for (const n of names) {
        const other = bases.get(outputBase(n));
        if (other !== undefined) return fail(EXIT_UNREACHABLE, `--name ${other} and --name ${n} would both write ${outputBase(n)}.pem; fetch them into separate --out directories`);
        bases.set(outputBase(n), n);
      }
      try {
        fs.mkdirSync(config.out, { recursive: true, mode: 0o700 });
        fs.accessSync(config.out, fs.constants.W_OK);
      } catch (e) {
        return fail(EXIT_UNREACHABLE, `--out ${config.out}: cannot create or write (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
      }
    }
    return fetchSecrets({ ...config, names }, io);
  },
});

interface FetchSettings {
  readonly socket: string;
  readonly names: readonly string[];
  readonly out?: string | undefined;
  readonly watch: boolean;
  readonly json: boolean;
  readonly timeout: number;
  readonly node: string;
}

function fetchSecrets(s: FetchSettings, io: CommandIO): Promise<number> {
  const client = sdsClient(s.socket);
  const target = `unix:${s.socket}`;
  const node = { id: s.node, cluster: 'meshid-sds-fetch' };
  const calls = new Map<string, SecretStreamCall>();
  const answered = new Set<string>();
  const held = new Map<string, string>();
  const attempts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  let finished = false;

  return new Promise<number>((resolve) => {
    const finish = (code: number, message?: string) => {
      if (finished) return;
      finished = true;
      if (message) io.stderr.write(`meshid ${NAME}: ${message}\n`);
      for (const t of timers) clearTimeout(t);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // Half-close: the last ACKs go out first, then the server ends each stream.
      for (const c of calls.values()) c.end();
      const closing = setTimeout(() => {
        for (const c of calls.values()) c.cancel();
      }, 1000);
      const done = () => {
        clearTimeout(closing);
        client.close();
        resolve(code);
      };
      if (calls.size === 0) done();
      else onAllClosed = () => calls.size === 0 && done();
    };
    let onAllClosed = () => {};
    const onSignal = () => finish(EXIT_OK);
    if (s.watch) {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }

    const accepted = (name: string, r: AcceptedSecret) => {
      let view: SecretView = viewOf(r.secret, r.version); // the check below has already parsed it
      if (s.out !== undefined) {
        try {
          view = { ...view, files: writeFiles(s.out, r.secret) };
        } catch (e) {
          return finish(EXIT_REFUSED, `--out ${s.out}: cannot write ${name}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
        }
      }
      held.set(name, r.version);
      attempts.set(name, 0);
      answered.add(name);
      io.stdout.write(s.json ? `${JSON.stringify(view)}\n` : renderText(view, Date.now()));
      if (!s.watch && answered.size === s.names.length) finish(EXIT_OK);
    };

    const open = (name: string) => {
      if (finished) return;
      if (s.timeout > 0 && !answered.has(name)) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!answered.has(name)) finish(EXIT_UNREACHABLE, `${name}: no answer from ${target} within ${s.timeout} ms (does the agent have an SVID yet? is the name right?)`);
        }, s.timeout);
        timers.add(timer);
      }
      const call = streamSecret(client, name, node, {
        check: (secret, version) => {
          try {
            viewOf(secret, version);
            return undefined;
          } catch (e) {
            return errorMessage(e);
          }
        },
        accepted: (r) => accepted(name, r),
        rejected: (message, version) => {
          if (!s.watch) return finish(EXIT_REFUSED, `${name}: the response (version ${version || 'none'}) is one Envoy would reject, so it was NACKed: ${message}`);
          io.stderr.write(`meshid ${NAME}: ${name}: NACKed version ${version || 'none'} (${message}); still holding ${held.get(name) ?? 'nothing'}\n`);
        },
        ended: (status) => {
          calls.delete(name);
          if (finished) return onAllClosed();
          if (answered.has(name) && !s.watch) return; // it has been printed; the others are still coming
          if (status.code === GRPC_UNAVAILABLE && !answered.has(name)) {
            return finish(EXIT_UNREACHABLE, `${name}: cannot reach the SDS server at ${target}: ${status.details}`);
          }
          if (status.code !== GRPC_UNAVAILABLE) return finish(EXIT_REFUSED, `${name}: the agent refused it: ${statusText(status)}`);
          // --watch, after an answer: the agent went away (restart, shutdown); resubscribe as Envoy does.
          const attempt = attempts.get(name) ?? 0;
          attempts.set(name, attempt + 1);
          const delay = Math.min(RECONNECT_MS[1], RECONNECT_MS[0] * 2 ** attempt);
          io.stderr.write(`meshid ${NAME}: ${name}: stream ended (${statusText(status)}); resubscribing in ${delay} ms\n`);
          const timer = setTimeout(() => {
            timers.delete(timer);
            open(name);
          }, delay);
          timers.add(timer);
        },
      }, held.get(name) ?? '');
      calls.set(name, call);
    };
    for (const name of s.names) open(name);
  });
}

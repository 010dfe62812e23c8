/**
 * The decision log: one pino line per (sampled) decision, saying who asked for what, what was
 * decided, by which policy and rule, under which revision, what dry-run policies would have done,
 * and how long it took. Decisions that a dry-run policy would change are always logged, so trying
 * a policy out is visible at info level whatever the sampling.
 *
 * Every attribute a policy can match on is on the line, so `meshid authz replay` can decide the
 * request again under another policy set: source principal (and its namespaces), peer certificate
 * status, source IP (remote.ip is the same address: meshid does not read X-Forwarded-For),
 * destination IP and port, SNI, method, host, the path as received (without its query string,
 * which can carry tokens) and as normalised, the request headers, the verified request
 * credential's principal, audiences, presenter and claims, and Envoy's filter metadata.
 *
 * Audit: a request that came with a peer certificate carries the certificate's serial
 * (`peer_certificate_serial`, hex) and SHA-256 fingerprint of its DER (`peer_certificate_sha256`,
 * hex, as `meshid ca partner list` prints it) and, for partners (spiffe://<td>/partner/<name>, or
 * a partner CA of --partner-cas), the partner name (`partner`): computed once per certificate by
 * the peer certificate check (peer-certificate.ts), which caches by the string Envoy sends.
 *
 * Secrets: header values are logged as `hmac-sha256:<16 hex>`, an HMAC keyed with a random key
 * made once per agent process (equal values compare equal within one process's log, and a
 * guessed value cannot be checked against the log offline); only headers the operator names
 * (--authz-decision-log-headers) are logged as sent. Credential headers (authorization, cookie,
 * ...) cannot be named. Every value is capped at `fieldCap` bytes (and the headers at
 * MAX_HEADERS entries); a cut value ends with `…[truncated N bytes]` and the line's `truncated`
 * field lists the fields that were cut.
 *
 * Cost: the line is built by infoLineWriter (the bytes pino would write, without its generic
 * serialiser for the flat fields) and goes to an asynchronous, batched, bounded stdout buffer;
 * the only nested field is `headers`.
 */
import { hash, randomBytes } from 'node:crypto';
import { infoLineWriter, type LineFields, type Logger } from '../observability/logger.js';
import type { TokenResult } from './decide.js';
import type { Decision } from './engine.js';
import { type AuthzInput, namespacesOf, type PeerCertificateStatus, stripQuery } from './facts.js';
import { normalisePath, type EscapedSlashes } from './paths.js';

export interface DecisionLogOptions {
  /** Fraction of decisions logged, 0 (off) to 1 (all). */
  readonly sampleRate: number;
  readonly random?: () => number;
  /** Lower-case header names whose values are logged as sent; every other value is hashed. */
  readonly headers?: readonly string[];
  /** Most bytes of any one value on the line (default DEFAULT_FIELD_CAP). */
  readonly fieldCap?: number;
  /** HMAC key for header values; default: random, once per DecisionLog. */
  readonly hashKey?: Buffer;
  /** How the engine normalises paths, for the `path` field. */
  readonly escapedSlashes?: EscapedSlashes;
}

export interface DecisionRecord {
  readonly decisionId: string;
  readonly requestId: string | undefined;
  /** What the engine decided on, when the request could be read. */
  readonly input: AuthzInput | undefined;
  readonly decision: Decision;
  /** The request's token, when it presented one (or jwt_authn verified one). */
  readonly token?: TokenResult | undefined;
  readonly latencyUs: number;
}

export const DEFAULT_FIELD_CAP = 4096;
export const MAX_HEADERS = 64;
/** Headers that carry credentials: never logged as sent. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
export const HASH_PREFIX = 'hmac-sha256:';
const HMAC_BLOCK = 64;
const HASH_CACHE_ENTRIES = 4096;
const CACHED_VALUE_MAX = 256;
export const TRUNCATION_MARK = '…[truncated ';
/** Bumped when the meaning of a field changes; `meshid authz replay` reads this version. */
export const DECISION_LOG_FORMAT = 2;

/** The fields of a decision line; all top-level and primitive except `headers`. */
export const DECISION_FIELDS = [
  'log_format',
  'decision_id',
  'request_id',
  'principal',
  'source_namespaces',
  'peer_certificate',
  'peer_certificate_id',
  'peer_certificate_serial',
  'peer_certificate_sha256',
  'partner',
  'source_ip',
  'destination_ip',
  'destination_port',
  'sni',
  'method',
  'host',
  'path_received',
  'path',
  'headers',
  'request_principal',
  'request_audiences',
  'request_presenter',
  'request_claims',
  'request_certificate_bound',
  'token_source',
  'token_status',
  'token_reason',
  'token_issuer',
  'token_subject',
  'token_bound',
  'metadata',
  'truncated',
  'outcome',
  'reason',
  'policy',
  'rule',
  'revision',
  'audit_policy',
  'dry_run_outcome',
  'dry_run_changed',
  'dry_run_effective_policy',
  'dry_run_effective_rule',
  'detail',
  'rate_limit',
  'rate_limit_remaining',
  'rate_limit_counter',
  'latency_us',
] as const;

type Fields = Record<(typeof DECISION_FIELDS)[number], string | number | boolean | Record<string, string> | undefined>;

const INFO = 30;

/** A value cut to `cap` UTF-16 units with the mark, and whether it was cut. */
export function capValue(value: string, cap: number): { readonly value: string; readonly cut: boolean } {
  if (value.length <= cap) return { value, cut: false };
  const kept = value.slice(0, cap);
  const dropped = Buffer.byteLength(value) - Buffer.byteLength(kept);
  return { value: `${kept}${TRUNCATION_MARK}${dropped} bytes]`, cut: true };
}

/** The identity a certificate check found, or why it found none. */
function certificateId(cert: PeerCertificateStatus | undefined): string | undefined {
  if (!cert) return undefined;
  switch (cert.status) {
    case 'verified':
    case 'mapped':
      return cert.spiffeId;
    case 'unverified':
      return cert.uriSan;
    default:
      return cert.reason;
  }
}

function claimString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export class DecisionLog {
  private readonly random: () => number;
  private readonly line: (fields: LineFields, msg: string) => void;
  private readonly verbatim: ReadonlySet<string>;
  private readonly cap: number;
  private readonly innerPad: Uint8Array;
  private readonly outerPad: Uint8Array;
  /** Header values repeat (user-agent, content-type, tenants): their digests are kept, boundedly. */
  private readonly hashed = new Map<string, string>();
  private readonly escapedSlashes: EscapedSlashes;

  constructor(
    private readonly logger: Logger,
    private readonly options: DecisionLogOptions,
  ) {
    this.random = options.random ?? Math.random;
    this.line = infoLineWriter(logger);
    this.verbatim = new Set((options.headers ?? []).map((h) => h.toLowerCase()).filter((h) => !CREDENTIAL_HEADERS.includes(h)));
    this.cap = options.fieldCap ?? DEFAULT_FIELD_CAP;
    const given = options.hashKey ?? randomBytes(32);
    const key = Buffer.alloc(HMAC_BLOCK);
    (given.length > HMAC_BLOCK ? hash('sha256', given, 'buffer') : given).copy(key);
    this.innerPad = key.map((b) => b ^ 0x36);
    this.outerPad = key.map((b) => b ^ 0x5c);
    this.escapedSlashes = options.escapedSlashes ?? 'reject';
  }

  /** Whether this decision gets a line; cheap, so the caller can skip building the record. */
  wants(decision: Decision): boolean {
    const rate = this.options.sampleRate;
    return decision.dryRun?.changed === true || (rate > 0 && (rate >= 1 || this.random() < rate));
  }

  /** The hashed form of a header value, as it appears on the line. */
  hash(value: string): string {
    const cached = this.hashed.get(value);
    if (cached !== undefined) return cached;
    // HMAC-SHA256 (RFC 2104) from two one-shot hashes over the pre-padded key: the same digest as
    // createHmac at less than half its cost, which set up a new HMAC context per header per line.
    const inner = hash('sha256', Buffer.concat([this.innerPad, Buffer.from(value, 'utf8')]), 'buffer');
    const out = HASH_PREFIX + hash('sha256', Buffer.concat([this.outerPad, inner]), 'hex').slice(0, 16);
    if (value.length <= CACHED_VALUE_MAX) {
      if (this.hashed.size >= HASH_CACHE_ENTRIES) this.hashed.clear();
      this.hashed.set(value, out);
    }
    return out;
  }

  record(r: DecisionRecord): void {
    if (this.logger.levelVal > INFO) return;
    const d = r.decision;
    const input = r.input;
    const truncated: string[] = [];
    const cap = (name: string, v: string | undefined): string | undefined => {
      if (v === undefined) return undefined;
      const c = capValue(v, this.cap);
      if (c.cut) truncated.push(name);
      return c.value;
    };
    const json = (name: string, v: unknown): string | undefined => (v === undefined ? undefined : cap(name, JSON.stringify(v)));
    const received = input?.path ? stripQuery(input.path) : undefined;
    const normalised = received === undefined ? undefined : normalisePath(received, this.escapedSlashes);
    const cert = input?.peerCertificate;
    const auth = input?.requestAuth;
    const token = r.token;
    const principal = cap('principal', input?.principal || undefined);
    const fields: Fields = {
      log_format: DECISION_LOG_FORMAT,
      decision_id: r.decisionId,
      request_id: cap('request_id', r.requestId),
      principal,
      source_namespaces: input?.principal ? cap('source_namespaces', namespacesOf(input.principal).join(',')) || undefined : undefined,
      peer_certificate: cert?.status,
      peer_certificate_id: cap('peer_certificate_id', certificateId(cert)),
      peer_certificate_serial: cert?.serial,
      peer_certificate_sha256: cert?.sha256,
      partner: cert?.partner,
      source_ip: cap('source_ip', input?.sourceIp),
      destination_ip: cap('destination_ip', input?.destinationIp),
      destination_port: input?.destinationPort,
      sni: cap('sni', input?.sni),
      method: cap('method', input?.method),
      host: cap('host', input?.host),
      path_received: cap('path_received', received),
      path: normalised?.ok ? cap('path', normalised.path) : undefined,
      headers: input?.headers ? this.headersOf(input.headers, truncated) : undefined,
      request_principal: cap('request_principal', auth?.principal),
      request_audiences: auth ? json('request_audiences', auth.audiences) : undefined,
      request_presenter: cap('request_presenter', auth?.presenter),
      request_claims: auth ? json('request_claims', auth.claims) : undefined,
      request_certificate_bound: auth?.certificateBound,
      token_source: token?.source,
      token_status: token ? (token.status === 'valid' ? 'verified' : token.status) : undefined,
      token_reason: cap('token_reason', token?.problem),
      token_issuer: cap('token_issuer', token?.issuer ?? (token?.status === 'valid' ? claimString(auth?.claims.iss) : undefined)),
      token_subject: cap('token_subject', token?.subject ?? (token?.status === 'valid' ? claimString(auth?.claims.sub) : undefined)),
      token_bound: token && token.status !== 'invalid' ? token.binding?.bound === true : undefined,
      metadata: input?.metadata && Object.keys(input.metadata).length > 0 ? json('metadata', input.metadata) : undefined,
      truncated: undefined,
      outcome: d.allow ? 'allow' : 'deny',
      reason: d.reason,
      policy: d.rule?.policy.id,
      rule: d.rule?.rule,
      revision: d.revision,
      audit_policy: d.audit?.policy.id,
      dry_run_outcome: d.dryRun ? (d.dryRun.allow ? 'allow' : 'deny') : undefined,
      dry_run_changed: d.dryRun?.changed,
      dry_run_effective_policy: d.dryRun?.rule?.policy.id,
      dry_run_effective_rule: d.dryRun?.rule?.rule,
      detail: cap('detail', d.detail),
      rate_limit: d.rateLimit?.limit.id,
      rate_limit_remaining: d.rateLimit?.quota?.remaining,
      rate_limit_counter: d.rateLimit?.quota?.fallback ? `fallback_${d.rateLimit.quota.fallback}` : undefined,
      latency_us: r.latencyUs,
    };
    if (truncated.length > 0) fields.truncated = truncated.join(',');
    const decidedBy = d.reason === 'rate_limited' || d.reason === 'rate_limit_unavailable'
      ? `${d.reason} by ${d.rateLimit?.limit.id}`
      : d.rule ? `${d.rule.policy.id} rule ${d.rule.rule}` : d.reason;
    const shortPath = received === undefined ? '-' : capValue(received, 200).value;
    const msg = `authz ${fields.outcome} ${capValue(input?.method ?? '-', 32).value} ${shortPath} from ${principal === undefined ? 'no principal' : capValue(principal, 200).value}: ${decidedBy}${
      d.dryRun?.changed ? ` (dry-run policies would ${d.dryRun.allow ? 'allow' : 'deny'})` : ''
    }`;
    this.line(fields, msg);
  }

  private headersOf(headers: Readonly<Record<string, string>>, truncated: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    let n = 0;
    for (const name of Object.keys(headers)) {
      if (n === MAX_HEADERS) {
        truncated.push('headers');
        break;
      }
      const value = headers[name]!;
      const key = capValue(name, 256);
      if (key.cut) truncated.push('headers');
      if (this.verbatim.has(name)) {
        const c = capValue(value, this.cap);
        if (c.cut) truncated.push(`headers.${key.value}`);
        out[key.value] = c.value;
      } else {
        out[key.value] = this.hash(value);
      }
      n++;
    }
    return out;
  }
}

/**
 * Decision to CheckResponse, encoded directly as protobuf bytes: the generic encoder costs about
 * a microsecond per response (a Struct is a map of oneofs), a fifth of what the engine takes, and
 * every response has the same few shapes. The field numbers are Envoy's (external_auth.proto,
 * google/rpc/status.proto, google/protobuf/struct.proto); the tests decode these bytes with
 * Envoy's own protos.
 *
 * Allow: status OK. Deny: status PERMISSION_DENIED and denied_response 403 with a short text body
 * naming the reason (details can be turned off); a token that does not verify or is not bound to
 * the peer's certificate: UNAUTHENTICATED, 401 with WWW-Authenticate (RFC 6750 invalid_token). Both carry dynamic_metadata (decision id,
 * decision, reason, policy, rule, revision, dry-run outcome) for Envoy's access log.
 */
import type { Decision } from './engine.js';
import { nearMissText } from './explain.js';

export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;
export const HTTP_UNAUTHORIZED = 401;
export const HTTP_FORBIDDEN = 403;
export const HTTP_TOO_MANY_REQUESTS = 429;
export const HTTP_SERVICE_UNAVAILABLE = 503;

export interface ResponseOptions {
  /** Include reason, policy, rule and decision id in the 403 body (default true). */
  readonly denyDetails: boolean;
}

/** What Envoy's access log can read under the ext_authz filter's dynamic metadata. */
export function metadataOf(decision: Decision, decisionId: string): Array<[string, string | number | boolean]> {
  const fields: Array<[string, string | number | boolean]> = [
    ['decision_id', decisionId],
    ['decision', decision.allow ? 'allow' : 'deny'],
    ['reason', decision.reason],
    ['revision', decision.revision],
  ];
  if (decision.rule) fields.push(['policy', decision.rule.policy.id], ['rule', decision.rule.rule]);
  if (decision.audit) fields.push(['audit_policy', decision.audit.policy.id]);
  if (decision.dryRun) {
    fields.push(['dry_run_decision', decision.dryRun.allow ? 'allow' : 'deny']);
    if (decision.dryRun.rule) fields.push(['dry_run_effective_policy', decision.dryRun.rule.policy.id]);
  }
  if (decision.rateLimit) fields.push(['rate_limit', decision.rateLimit.limit.id]);
  if (decision.nearest && decision.nearest.length > 0) fields.push(['nearest_allow_rules', decision.nearest.map(nearMissText).join('; ')]);
  return fields;
}

/**
 * The IETF draft's RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers-09),
 * plus Retry-After when refused; none when the fallback answered without a counter.
 */
const NO_HEADERS: ReadonlyArray<[string, string]> = Object.freeze([]);

export function rateLimitHeaders(decision: Decision): Array<[string, string]> {
  const rl = decision.rateLimit;
  if (!rl?.quota || rl.quota.fallback === 'open' || rl.quota.fallback === 'closed') {
    return rl?.quota && !rl.quota.allowed ? [['retry-after', String(rl.quota.retryAfterSeconds)]] : [];
  }
  const q = rl.quota;
  const headers: Array<[string, string]> = [
    ['ratelimit-policy', rl.limit.policyHeader],
    ['ratelimit', `${rl.limit.headerName};r=${q.remaining};t=${q.resetSeconds}`],
  ];
  if (!q.allowed) headers.push(['retry-after', String(q.retryAfterSeconds)]);
  return headers;
}

export function denyBody(decision: Decision, decisionId: string, options: ResponseOptions): string {
  if (decision.reason === 'rate_limited' || decision.reason === 'rate_limit_unavailable') {
    const what = decision.reason === 'rate_limited' ? 'rate limit exceeded' : 'rate limit unavailable';
    return options.denyDetails ? `${what}: ${decision.rateLimit?.limit.id ?? ''}; decision ${decisionId}\n` : `${what}\n`;
  }
  if (!options.denyDetails) return 'access denied\n';
  const where = decision.rule ? `; policy ${decision.rule.policy.id} rule ${decision.rule.rule}` : '';
  const why = decision.nearest ? `; ${decision.detail ?? ''}` : '';
  return `access denied: ${decision.reason}${where}${why}; decision ${decisionId}\n`;
}

export function encodeCheckResponse(decision: Decision, decisionId: string, options: ResponseOptions): Buffer {
  const w = new Writer();
  const limitHeaders = decision.rateLimit ? rateLimitHeaders(decision) : NO_HEADERS;
  if (decision.allow) {
    w.begin(1).end(); // google.rpc.Status with code 0 (OK)
    if (limitHeaders.length > 0) {
      w.begin(3); // OkHttpResponse: response_headers_to_add = 6, HeaderValueOption{HeaderValue}
      for (const [k, v] of limitHeaders) w.begin(6).begin(1).string(1, k).string(2, v).end().end();
      w.end();
    }
  } else {
    const [grpcCode, httpCode] =
      decision.reason === 'rate_limited'
        ? [GRPC_RESOURCE_EXHAUSTED, HTTP_TOO_MANY_REQUESTS]
        : decision.reason === 'rate_limit_unavailable'
          ? [GRPC_UNAVAILABLE, HTTP_SERVICE_UNAVAILABLE]
          : decision.reason === 'jwt_invalid' || decision.reason === 'token_not_bound'
            ? [GRPC_UNAUTHENTICATED, HTTP_UNAUTHORIZED]
            : [GRPC_PERMISSION_DENIED, HTTP_FORBIDDEN];
    w.begin(1).varint(1, grpcCode).string(2, decision.reason).end();
    w.begin(2); // DeniedHttpResponse
    w.begin(1).varint(1, httpCode).end(); // envoy.type.v3.HttpStatus
    w.begin(2).begin(1).string(1, 'content-type').string(2, 'text/plain').end().end(); // HeaderValueOption{HeaderValue}
    w.begin(2).begin(1).string(1, 'x-meshid-decision-id').string(2, decisionId).end().end();
    for (const [k, v] of limitHeaders) w.begin(2).begin(1).string(1, k).string(2, v).end().end();
    if (httpCode === HTTP_UNAUTHORIZED) w.begin(2).begin(1).string(1, 'www-authenticate').string(2, 'Bearer error="invalid_token"').end().end();
    w.string(3, denyBody(decision, decisionId, options));
    w.end();
  }
  w.begin(4); // google.protobuf.Struct: map<string, Value> fields = 1
  for (const [k, v] of metadataOf(decision, decisionId)) {
    w.begin(1).string(1, k).begin(2);
    // google.protobuf.Value: number_value = 2 (double), string_value = 3, bool_value = 4
    if (typeof v === 'string') w.string(3, v);
    else if (typeof v === 'boolean') w.varint(4, v ? 1 : 0);
    else w.double(2, v);
    w.end().end();
  }
  w.end();
  return w.finish();
}

// ---- protobuf wire format: just what the shapes above need --------------------------------------

/**
 * Writes into one scratch buffer. A nested message reserves one byte for its length and, in the
 * rare case the length needs more, moves its content up: no per-field allocations.
 */
class Writer {
  private static scratch = Buffer.allocUnsafe(4096);
  private buf = Writer.scratch;
  private pos = 0;
  private readonly open: number[] = [];

  begin(field: number): this {
    this.tag(field, 2);
    this.open.push(this.pos);
    this.ensure(1);
    this.pos += 1; // length placeholder
    return this;
  }

  end(): this {
    const lenAt = this.open.pop()!;
    const len = this.pos - lenAt - 1;
    const extra = varintSize(len) - 1;
    if (extra > 0) {
      this.ensure(extra);
      this.buf.copyWithin(lenAt + 1 + extra, lenAt + 1, this.pos);
      this.pos += extra;
    }
    writeVarint(this.buf, lenAt, len);
    return this;
  }

  string(field: number, s: string): this {
    this.tag(field, 2);
    // Short ASCII strings (nearly all of ours) are copied in JS: Buffer#write's native call
    // costs more than the copy.
    if (s.length < 256 && isAscii(s)) {
      this.raw(s.length);
      this.ensure(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
      return this;
    }
    const len = Buffer.byteLength(s);
    this.raw(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, 'utf8');
    return this;
  }

  varint(field: number, n: number): this {
    this.tag(field, 0);
    this.raw(n);
    return this;
  }

  double(field: number, x: number): this {
    this.tag(field, 1);
    this.ensure(8);
    this.pos = this.buf.writeDoubleLE(x, this.pos);
    return this;
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  private tag(field: number, wire: number): void {
    this.raw((field << 3) | wire);
  }

  private raw(n: number): void {
    this.ensure(10);
    this.pos = writeVarint(this.buf, this.pos, n);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger; // the shared scratch stays small; a huge response gets its own buffer
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/** Writes n at offset; returns the offset after it. */
function writeVarint(buf: Buffer, offset: number, n: number): number {
  let v = n;
  let at = offset;
  while (v > 0x7f) {
    buf[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/**
 * Replay of recorded decisions (`meshid authz replay`): a decision-log line back to the engine's
 * input, decided again under another policy set, and compared with what was decided. Pure.
 *
 * A request can be replayed exactly only from what the line holds: a header whose value was
 * logged as an HMAC, or a value the log cut short, cannot be matched on again. When a policy of
 * either set reads such a value the request is "undecidable" (with the reason), never guessed.
 */
import { parseConditionKey } from './attributes.js';
import type { CompiledPolicySet } from './compile.js';
import { DECISION_LOG_FORMAT, HASH_PREFIX } from './decision-log.js';
import { type Decision, evaluate } from './engine.js';
import type { AuthzInput, PeerCertificateStatus, RequestAuth } from './facts.js';

/** What was decided, as the comparison sees it: the outcome before any rate limit, and what decided. */
export interface Decided {
  readonly outcome: 'allow' | 'deny';
  readonly reason: string;
  readonly policy: string | undefined;
  readonly rule: number | undefined;
}

export interface RecordedDecision {
  readonly decisionId: string;
  readonly input: AuthzInput;
  readonly decided: Decided;
  /** Headers present on the request whose values were logged hashed. */
  readonly hashedHeaders: readonly string[];
  /** Fields the log cut short. */
  readonly truncated: readonly string[];
}

export type LineRead =
  | { readonly kind: 'decision'; readonly decision: RecordedDecision }
  /** Not a decision line (another component's), or a decision made outside the policies. */
  | { readonly kind: 'skip'; readonly why: string }
  | { readonly kind: 'bad'; readonly why: string };

/**
 * Decisions made outside the policies: replaying them says nothing about a policy change. A token
 * refused before the policies (jwt_invalid, token_not_bound) stays refused under any policy set.
 */
const NOT_BY_POLICY = new Set(['malformed_request', 'no_valid_policy_set', 'internal_error', 'jwt_invalid', 'token_not_bound']);

export function readDecisionLine(text: string): LineRead {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { kind: 'bad', why: 'is not a JSON log line' };
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) return { kind: 'bad', why: 'is not a JSON object' };
  const l = o as Record<string, unknown>;
  if (typeof l.decision_id !== 'string' || (l.outcome !== 'allow' && l.outcome !== 'deny')) return { kind: 'skip', why: 'not a decision line' };
  if (l.log_format !== DECISION_LOG_FORMAT) {
    return { kind: 'bad', why: `is a decision line of log format ${JSON.stringify(l.log_format ?? 1)}, which does not record the request's attributes (format ${DECISION_LOG_FORMAT} does)` };
  }
  const reason = str(l.reason) ?? '';
  if (NOT_BY_POLICY.has(reason)) return { kind: 'skip', why: `decided ${reason}, not by a policy` };
  const headers: Record<string, string> = {};
  const hashed: string[] = [];
  if (l.headers !== undefined) {
    if (!l.headers || typeof l.headers !== 'object' || Array.isArray(l.headers)) return { kind: 'bad', why: 'has a "headers" field that is not an object' };
    for (const [k, v] of Object.entries(l.headers as Record<string, unknown>)) {
      if (typeof v !== 'string') return { kind: 'bad', why: `has a header ${JSON.stringify(k)} whose value is not a string` };
      if (v.startsWith(HASH_PREFIX)) hashed.push(k);
      headers[k] = v;
    }
  }
  let requestAuth: RequestAuth | undefined;
  let metadata: AuthzInput['metadata'];
  try {
    if (typeof l.request_principal === 'string') {
      requestAuth = {
        principal: l.request_principal,
        audiences: typeof l.request_audiences === 'string' ? (JSON.parse(l.request_audiences) as string[]) : [],
        ...(typeof l.request_presenter === 'string' ? { presenter: l.request_presenter } : {}),
        claims: typeof l.request_claims === 'string' ? (JSON.parse(l.request_claims) as Record<string, unknown>) : {},
        ...(typeof l.request_certificate_bound === 'boolean' ? { certificateBound: l.request_certificate_bound } : {}),
      };
    }
    if (typeof l.metadata === 'string') metadata = JSON.parse(l.metadata) as AuthzInput['metadata'];
  } catch {
    // A cut JSON value does not parse; it is listed in `truncated`, and the request is undecidable.
    if (!str(l.truncated)) return { kind: 'bad', why: 'has request_audiences, request_claims or metadata that is not JSON' };
  }
  const rateLimited = reason === 'rate_limited' || reason === 'rate_limit_unavailable';
  const input: AuthzInput = {
    ...opt('principal', str(l.principal)),
    ...opt('peerCertificate', peerCertificate(l)),
    ...opt('sourceIp', str(l.source_ip)),
    ...opt('destinationIp', str(l.destination_ip)),
    ...opt('destinationPort', typeof l.destination_port === 'number' ? l.destination_port : undefined),
    ...opt('sni', str(l.sni)),
    ...opt('method', str(l.method)),
    ...opt('host', str(l.host)),
    ...opt('path', str(l.path_received)),
    headers,
    ...opt('requestAuth', requestAuth),
    ...opt('metadata', metadata),
  };
  return {
    kind: 'decision',
    decision: {
      decisionId: l.decision_id,
      input,
      decided: {
        // A rate-limited request was allowed by the policies; replay compares the policies' decision.
        outcome: rateLimited ? 'allow' : l.outcome,
        reason: rateLimited ? 'allow_policy_matched' : reason,
        policy: str(l.policy),
        rule: typeof l.rule === 'number' ? l.rule : undefined,
      },
      hashedHeaders: hashed,
      truncated: (str(l.truncated) ?? '').split(',').filter((f) => f !== ''),
    },
  };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function peerCertificate(l: Record<string, unknown>): PeerCertificateStatus | undefined {
  const id = str(l.peer_certificate_id);
  switch (l.peer_certificate) {
    case 'verified':
      return id ? { status: 'verified', spiffeId: id } : undefined;
    case 'mapped':
      return id ? { status: 'mapped', spiffeId: id } : undefined;
    case 'unmapped':
      return { status: 'unmapped', reason: id ?? 'unmapped partner certificate' };
    case 'unverified':
      return id ? { status: 'unverified', uriSan: id } : { status: 'unverified' };
    case 'invalid':
      return { status: 'invalid', reason: id ?? 'invalid peer certificate' };
    default:
      return undefined;
  }
}

/** The header names any condition of the set reads (request.headers[...]), lower-case. */
export function headersRead(set: CompiledPolicySet): ReadonlySet<string> {
  const out = new Set<string>();
  for (const p of set.policies) {
    for (const r of p.rules ?? []) {
      for (const c of r.when ?? []) {
        const key = parseConditionKey(c.key);
        if ('kind' in key && key.kind === 'header' && key.header) out.add(key.header);
      }
    }
  }
  return out;
}

export function decidedOf(d: Decision): Decided {
  return { outcome: d.allow ? 'allow' : 'deny', reason: d.reason, policy: d.rule?.policy.id, rule: d.rule?.rule };
}

export type ReplayResult =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'changed'; readonly before: Decided; readonly after: Decided }
  | { readonly kind: 'undecidable'; readonly why: string };

/**
 * One recorded request under the candidate set, compared with what was recorded, or with what the
 * current set decides when one is given.
 */
export function replayOne(r: RecordedDecision, candidate: CompiledPolicySet, current: CompiledPolicySet | undefined, readBy: ReadonlySet<string>): ReplayResult {
  const blind = r.hashedHeaders.filter((h) => readBy.has(h));
  if (blind.length > 0) return { kind: 'undecidable', why: `a policy matches on header ${blind.join(', ')}, logged hashed (name it with --authz-decision-log-headers to replay it)` };
  const cut = r.truncated.filter((f) => f !== 'detail' && f !== 'request_id' && (!f.startsWith('headers.') || readBy.has(f.slice(8))));
  if (cut.length > 0) return { kind: 'undecidable', why: `the log cut ${cut.join(', ')} short` };
  const before = current ? decidedOf(evaluate(current, r.input)) : r.decided;
  const after = decidedOf(evaluate(candidate, r.input));
  const same = before.outcome === after.outcome && before.policy === after.policy && before.rule === after.rule;
  return same ? { kind: 'unchanged' } : { kind: 'changed', before, after };
}

/** The policy a change is filed under: the one that now decides, else the one that used to. */
export function changeGroup(before: Decided, after: Decided): string {
  return after.policy ?? before.policy ?? '(no policy: default outcome)';
}

export function describeDecided(d: Decided): string {
  return d.policy ? `${d.outcome} (${d.policy} rule ${d.rule ?? '?'})` : `${d.outcome} (${d.reason})`;
}

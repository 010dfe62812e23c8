/**
 * The decision log: one pino line per (sampled) decision, saying who asked for what, what was
 * decided, by which policy and rule, under which revision, what dry-run policies would have done,
 * and how long it took. Decisions that a dry-run policy would change are always logged, so trying
 * a policy out is visible at info level whatever the sampling. The path is logged without its
 * query string, which can carry tokens.
 *
 * Cost: the line is built by infoLineWriter (the bytes pino would write, without its generic
 * serialiser) and goes to an asynchronous bounded stdout buffer; the fields are flat primitives to
 * keep that possible.
 */
import { infoLineWriter, type LineFields, type Logger } from '../observability/logger.js';
import type { Decision } from './engine.js';
import { stripQuery } from './facts.js';

export interface DecisionLogOptions {
  /** Fraction of decisions logged, 0 (off) to 1 (all). */
  readonly sampleRate: number;
  readonly random?: () => number;
}

export interface DecisionRecord {
  readonly decisionId: string;
  readonly requestId: string | undefined;
  readonly principal: string | undefined;
  readonly method: string | undefined;
  readonly host: string | undefined;
  readonly path: string | undefined;
  readonly decision: Decision;
  readonly latencyUs: number;
}

/** The fields of a decision line, all top-level and primitive. */
export const DECISION_FIELDS = [
  'decision_id',
  'request_id',
  'principal',
  'method',
  'host',
  'path',
  'outcome',
  'reason',
  'policy',
  'rule',
  'revision',
  'audit_policy',
  'dry_run_outcome',
  'dry_run_changed',
  'dry_run_policy',
  'dry_run_rule',
  'detail',
  'rate_limit',
  'rate_limit_remaining',
  'rate_limit_counter',
  'latency_us',
] as const;

type Fields = Record<(typeof DECISION_FIELDS)[number], string | number | boolean | undefined>;

const INFO = 30;

export class DecisionLog {
  private readonly random: () => number;
  private readonly line: (fields: LineFields, msg: string) => void;

  constructor(
    private readonly logger: Logger,
    private readonly options: DecisionLogOptions,
  ) {
    this.random = options.random ?? Math.random;
    this.line = infoLineWriter(logger);
  }

  /** Whether this decision gets a line; cheap, so the caller can skip building the record. */
  wants(decision: Decision): boolean {
    const rate = this.options.sampleRate;
    return decision.dryRun?.changed === true || (rate > 0 && (rate >= 1 || this.random() < rate));
  }

  record(r: DecisionRecord): void {
    if (this.logger.levelVal > INFO) return;
    const d = r.decision;
    const fields: Fields = {
      decision_id: r.decisionId,
      request_id: r.requestId,
      principal: r.principal,
      method: r.method,
      host: r.host,
      path: r.path === undefined ? undefined : stripQuery(r.path),
      outcome: d.allow ? 'allow' : 'deny',
      reason: d.reason,
      policy: d.rule?.policy.id,
      rule: d.rule?.rule,
      revision: d.revision,
      audit_policy: d.audit?.policy.id,
      dry_run_outcome: d.dryRun ? (d.dryRun.allow ? 'allow' : 'deny') : undefined,
      dry_run_changed: d.dryRun?.changed,
      dry_run_policy: d.dryRun?.rule?.policy.id,
      dry_run_rule: d.dryRun?.rule?.rule,
      detail: d.detail,
      rate_limit: d.rateLimit?.limit.id,
      rate_limit_remaining: d.rateLimit?.quota?.remaining,
      rate_limit_counter: d.rateLimit?.quota?.fallback ? `fallback_${d.rateLimit.quota.fallback}` : undefined,
      latency_us: r.latencyUs,
    };
    const decidedBy = d.reason === 'rate_limited' || d.reason === 'rate_limit_unavailable'
      ? `${d.reason} by ${d.rateLimit?.limit.id}`
      : d.rule ? `${d.rule.policy.id} rule ${d.rule.rule}` : d.reason;
    const msg = `authz ${fields.outcome} ${r.method ?? '-'} ${fields.path ?? '-'} from ${r.principal ?? 'no principal'}: ${decidedBy}${
      d.dryRun?.changed ? ` (dry-run policies would ${d.dryRun.allow ? 'allow' : 'deny'})` : ''
    }`;
    this.line(fields, msg);
  }
}

/**
 * The decision log: one pino line per (sampled) decision, saying who asked for what, what was
 * decided, by which policy and rule, under which revision, what dry-run policies would have done,
 * and how long it took. Decisions that a dry-run policy would change are always logged, so trying
 * a policy out is visible at info level whatever the sampling. The path is logged without its
 * query string, which can carry tokens.
 *
 * Cost: pino's generic serialisation of a 16-field object (plus the project's wildcard redaction
 * paths, which run on every field) takes 5 to 15 us, more than the rest of a Check together. The
 * record here has a fixed set of flat fields, none of them secret, so the line is assembled from
 * pino's own pre-serialised pieces (level, time, bindings, end) around one JSON.stringify and
 * written to the logger's stream: the same bytes pino would write (a test holds this), at a
 * fraction of the cost. Loggers this shortcut cannot mirror (mixins, hooks, custom log
 * formatters, serializers or redaction on these fields, multistream) get plain logger.info.
 */
import { pino } from 'pino';
import type { Logger } from '../observability/logger.js';
import type { Decision } from './engine.js';

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
  'latency_us',
] as const;

type Fields = Record<(typeof DECISION_FIELDS)[number], string | number | boolean | undefined>;

const INFO = 30;

export class DecisionLog {
  private readonly random: () => number;
  private readonly direct: DirectWriter | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly options: DecisionLogOptions,
  ) {
    this.random = options.random ?? Math.random;
    this.direct = directWriter(logger);
  }

  /** Writes out lines still batched for the end of this event-loop turn. */
  flush(): void {
    this.direct?.flush();
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
      path: r.path === undefined ? undefined : withoutQuery(r.path),
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
      latency_us: r.latencyUs,
    };
    const msg = d.dryRun?.changed ? 'authz decision (a dry-run policy would change it)' : 'authz decision';
    if (this.direct) this.direct(fields, msg);
    else this.logger.info(fields, msg);
  }
}

type DirectWriter = ((fields: Fields, msg: string) => void) & { flush(): void };

/** Internals pino exports "for integration purposes" (pino.symbols). */
interface PinoInternals {
  [key: symbol]: unknown;
}

/** Exported by pino 8+, but missing from its type declarations. */
const MSG_PREFIX_SYM = (pino.symbols as unknown as Record<string, symbol | undefined>).msgPrefixSym;

/** A writer producing pino's exact line for this logger, or undefined when it cannot. */
export function directWriter(logger: Logger): DirectWriter | undefined {
  const S = pino.symbols;
  const l = logger as unknown as PinoInternals;
  const stream = l[S.streamSym] as { write?: (s: string) => unknown; [k: symbol]: unknown } | undefined;
  const hooks = l[S.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const formatters = l[S.formattersSym] as { log?: unknown } | undefined;
  const serializers = (l[S.serializersSym] ?? {}) as Record<string, unknown>;
  const stringifiers = (l[S.stringifiersSym] ?? {}) as Record<string | symbol, unknown>;
  const lsCache = l[S.lsCacheSym] as Record<number, string> | undefined;
  const time = l[S.timeSym] as (() => string) | undefined;
  const chindings = l[S.chindingsSym];
  const end = l[S.endSym];
  const mirrorable =
    typeof stream?.write === 'function' &&
    stream[S.needsMetadataGsym] !== true &&
    !l[S.mixinSym] &&
    !hooks?.logMethod &&
    !hooks?.streamWrite &&
    !formatters?.log &&
    !l[S.nestedKeySym] &&
    !(MSG_PREFIX_SYM && l[MSG_PREFIX_SYM]) &&
    l[S.messageKeySym] === 'msg' &&
    typeof lsCache?.[INFO] === 'string' &&
    typeof time === 'function' &&
    typeof chindings === 'string' &&
    typeof end === 'string' &&
    !DECISION_FIELDS.some((f) => serializers[f] !== undefined || stringifiers[f] !== undefined) &&
    serializers.msg === undefined &&
    stringifiers.msg === undefined;
  if (!mirrorable) return undefined;
  // Lines written in one event-loop turn go out in one write: a stream write costs more than
  // building the line. (Not a timer: setImmediate runs at the end of the current turn.)
  let batch: string[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    const lines = batch.join('');
    batch = [];
    stream!.write!(lines);
  };
  const writer = (fields: Fields, msg: string) => {
    // JSON.stringify drops undefined fields, as pino does; the fields are flat primitives, so
    // wildcard redaction paths ("*.token") cannot apply to them.
    const json = JSON.stringify(fields);
    const body = json.length > 2 ? `,${json.slice(1, -1)}` : '';
    const n = batch.push(`${lsCache![INFO]}${time!.call(logger)}${chindings}${body},"msg":${JSON.stringify(msg)}${end}`);
    if (n === 1) setImmediate(flush);
    else if (n >= MAX_BATCH) flush();
  };
  return Object.assign(writer, { flush });
}

const MAX_BATCH = 512;

function withoutQuery(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

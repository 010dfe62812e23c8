/**
 * Strict validation of AuthorizationPolicy YAML. Every problem names the file, the document (index
 * and policy name), the field path and the line, and all problems are collected before anything
 * is refused: an operator fixes a whole file in one pass. Typos that Istio would silently read as
 * "field not set" (an unknown field, an empty list) are errors here, because in an authorization
 * policy "not set" means "anything". Pure: takes text, does no I/O.
 */
import { quoteBounded, shorten } from '../lib/quote.js';
import { type Document, LineCounter, parseAllDocuments, isMap, isSeq, isScalar, type Node as YamlNode } from 'yaml';
import { closest } from '../lib/edit-distance.js';
import { MAX_SERVICE_ACCOUNTS, OPERATION_KINDS, parseConditionKey, SOURCE_KINDS, type ValueKind, valueProblem } from './attributes.js';
import {
  type AuthorizationPolicy,
  type Condition,
  OPERATION_FIELDS,
  type Operation,
  type PolicyAction,
  policyId,
  type Rule,
  SOURCE_FIELDS,
  type Source,
  type TargetRef,
} from './policy.js';
import {
  RATE_LIMIT_API_VERSION,
  RATE_LIMIT_KIND,
  RATE_LIMIT_PARTITIONS,
  RATE_LIMIT_UNITS,
  type RateLimit,
  type RateLimitPartition,
  type RateLimitPolicy,
  type RateLimitUnit,
} from './rate-limit/policy.js';

export const API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;
export const KIND = 'AuthorizationPolicy';
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

export type Severity = 'error' | 'warning';

/**
 * The codes of policy findings. A union of their own, not ERROR_CODES: a finding is not an error
 * thrown through a handler (it has no gRPC status and no exit code of its own: the set is refused
 * as a whole, and `policy lint` exits 1 for any error finding), and warnings share the namespace.
 */
export type PolicyIssueCode =
  | 'bad_annotation'
  | 'bad_value'
  | 'duplicate_limit'
  | 'bad_cidr'
  | 'bad_name'
  | 'bad_path_template'
  | 'bad_port'
  | 'bad_selector'
  | 'bad_service_account'
  | 'bad_target_ref'
  | 'bad_trust_domain'
  | 'cidr_host_bits'
  | 'conflicting_fields'
  | 'custom_refused'
  | 'deny_without_rules'
  | 'duplicate_policy'
  | 'empty_list'
  | 'empty_operation'
  | 'empty_selector'
  | 'empty_source'
  | 'empty_value'
  | 'host_port'
  | 'invalid_utf8'
  | 'literal_wildcard'
  | 'method_case'
  | 'missing_field'
  | 'missing_name'
  | 'missing_namespace'
  | 'missing_spec'
  | 'never_matches'
  | 'no_policies'
  | 'path_not_absolute'
  | 'plaintext_match'
  | 'policy_dir_unreadable'
  | 'policy_load_failed'
  | 'policy_too_large'
  | 'document_too_large'
  | 'principal_spiffe_prefix'
  | 'sni_case'
  | 'too_many_items'
  | 'unknown_action'
  | 'unknown_field'
  | 'unknown_when_key'
  | 'value_too_long'
  | 'when_without_values'
  | 'wrong_api_version'
  | 'wrong_kind'
  | 'wrong_type'
  | 'yaml_syntax';

export interface PolicyIssue {
  readonly severity: Severity;
  /** Stable machine-readable code, e.g. unknown_field, bad_port. */
  readonly code: PolicyIssueCode;
  readonly file: string;
  readonly doc?: number;
  /** The policy's name when the document has one. */
  readonly policy?: string;
  /** Field path, e.g. spec.rules[0].from[0].source.principals[1]. */
  readonly path?: string;
  readonly line?: number;
  readonly column?: number;
  readonly message: string;
}

/** The longest formatted finding (a value quoted into it is cut far shorter, at QUOTE_MAX). */
const MAX_ISSUE_LINE = 2000;

/** `file:line doc N (name): path: message`, the one line an operator needs. */
export function formatIssue(i: PolicyIssue): string {
  let where = i.file;
  if (i.line !== undefined) where += `:${i.line}${i.column !== undefined ? `:${i.column}` : ''}`;
  if (i.doc !== undefined) where += ` doc ${i.doc}`;
  if (i.policy !== undefined) where += ` (${i.policy})`;
  // Every message quotes values through quoteBounded; this cut is the backstop for any that does not.
  return shorten(`${where}: ${i.path ? `${i.path}: ` : ''}${i.message}`, MAX_ISSUE_LINE);
}

export interface PolicyFileText {
  /** As shown to the operator: relative to the policy directory. */
  readonly file: string;
  readonly text: string;
}

export interface ParsedPolicies {
  readonly policies: readonly AuthorizationPolicy[];
  readonly rateLimits: readonly RateLimitPolicy[];
  readonly errors: readonly PolicyIssue[];
  /** Findings Istio's webhook reports as warnings (the policy still loads). */
  readonly warnings: readonly PolicyIssue[];
}

type PathSeg = string | number;
type Path = readonly PathSeg[];

export function pathText(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${quoteBounded(seg)}]`;
  }
  return out;
}

/** Validates every document of every file, then across files (duplicate names). */
export function parsePolicyFiles(files: readonly PolicyFileText[]): ParsedPolicies {
  return mergeParsedFiles(files.map((f) => parsePolicyFile(f.file, f.text)));
}

/** The files' findings together (in the order given), and the checks across files. */
export function mergeParsedFiles(parsed: readonly ParsedPolicies[]): ParsedPolicies {
  const policies: AuthorizationPolicy[] = [];
  const rateLimits: RateLimitPolicy[] = [];
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  for (const r of parsed) {
    policies.push(...r.policies);
    rateLimits.push(...r.rateLimits);
    errors.push(...r.errors);
    warnings.push(...r.warnings);
  }
  // Names are unique per kind, as Kubernetes keeps them.
  for (const [kind, list] of [[KIND, policies], [RATE_LIMIT_KIND, rateLimits]] as const) {
    errors.push(...duplicateNames(kind, list));
  }
  return { policies, rateLimits, errors, warnings };
}

function duplicateNames(kind: string, list: readonly (AuthorizationPolicy | RateLimitPolicy)[]): PolicyIssue[] {
  const errors: PolicyIssue[] = [];
  const seen = new Map<string, AuthorizationPolicy | RateLimitPolicy>();
  for (const p of list) {
    const first = seen.get(p.id);
    if (first) {
      errors.push({
        severity: 'error',
        code: 'duplicate_policy',
        file: p.origin.file,
        doc: p.origin.doc,
        policy: p.name,
        ...(p.origin.line !== undefined ? { line: p.origin.line } : {}),
        path: 'metadata.name',
        message: `${kind} ${p.id} is defined twice (first in ${first.origin.file} doc ${first.origin.doc})`,
      });
    } else {
      seen.set(p.id, p);
    }
  }
  return errors;
}

export function parsePolicyFile(file: string, text: string): ParsedPolicies {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const policies: AuthorizationPolicy[] = [];
  const rateLimits: RateLimitPolicy[] = [];
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  if (!Array.isArray(docs)) return { policies, rateLimits, errors, warnings }; // an empty stream: no documents
  docs.forEach((doc, i) => {
    const size = doc.range[2] - doc.range[0];
    if (size > MAX_POLICY_DOCUMENT_CHARS) {
      const at = lineCounter.linePos(doc.range[0]);
      errors.push({
        severity: 'error',
        code: 'document_too_large',
        file,
        doc: i + 1,
        line: at.line,
        message: `the document is ${size} characters long, over the ${MAX_POLICY_DOCUMENT_CHARS}-character limit for one policy document; split it`,
      });
      return;
    }
    const reader = new DocReader(file, i + 1, doc, lineCounter);
    const policy = reader.read();
    const issues = reader.issues();
    const errs = issues.filter((x) => x.severity === 'error');
    // In line order, as an editor shows them (Array.prototype.sort is stable).
    errors.push(...errs.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
    warnings.push(...issues.filter((x) => x.severity === 'warning'));
    if (policy && errs.length === 0) {
      if ('limits' in policy) rateLimits.push(policy);
      else policies.push(policy);
    }
  });
  return { policies, rateLimits, errors, warnings };
}

const TOP_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];
/** ObjectMeta as `kubectl get -o yaml` prints it: accepted so exported YAML loads unchanged. */
const METADATA_FIELDS = [
  'name',
  'namespace',
  'labels',
  'annotations',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'finalizers',
  'ownerReferences',
  'managedFields',
  'generateName',
  'selfLink',
];
const SPEC_FIELDS = ['selector', 'targetRef', 'targetRefs', 'rules', 'action', 'provider'];
const RULE_FIELDS = ['from', 'to', 'when'];
const TARGET_REF_FIELDS = ['group', 'kind', 'name', 'namespace'];
const CONDITION_FIELDS = ['key', 'values', 'notValues'];

/**
 * The longest YAML document read (1 Mi characters: Kubernetes keeps objects under ~1.5 MiB).
 * Longer ones are refused before they are converted, so one huge document cannot cost more than
 * its parse (policy-dir.ts caps the file).
 */
export const MAX_POLICY_DOCUMENT_CHARS = 1024 * 1024;

/** The CRD schema's maxItems of spec.rules and of a rule's from. */
export const MAX_RULES = 512;
export const MAX_FROM = 512;
export const MAX_TARGET_REFS = 16;
/** CRD: matchLabels values maxLength 63, at most 4096 labels. */
const MAX_LABEL_VALUE = 63;
const MAX_LABELS = 4096;

/** The targets Istio's webhook allows (group "" is core), by "group/kind". */
const TARGET_KINDS = new Set(['core/Service', 'networking.istio.io/ServiceEntry', 'gateway.networking.k8s.io/Gateway', 'gateway.networking.k8s.io/GatewayClass']);
const GROUP_RE = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND_RE = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** Go's strconv.ParseBool, which Istio uses for istio.io/dry-run. */
const BOOL_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const BOOL_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

class DocReader {
  private readonly found: PolicyIssue[] = [];
  private name: string | undefined;
  /** metadata.namespace, for serviceAccounts values without a namespace. */
  private namespace: string | undefined;

  constructor(
    private readonly file: string,
    private readonly index: number,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  issues(): PolicyIssue[] {
    const policy = this.name;
    return policy === undefined ? this.found : this.found.map((i) => ({ ...i, policy }));
  }

  read(): AuthorizationPolicy | RateLimitPolicy | undefined {
    // Only the first syntax error of a document: the parser's later ones mostly follow from it.
    const [syntax] = this.doc.errors;
    if (syntax) {
      const at = syntax.linePos?.[0] ?? this.lines.linePos(syntax.pos[0]);
      this.found.push({
        severity: 'error',
        code: 'yaml_syntax',
        file: this.file,
        doc: this.index,
        line: at.line,
        column: at.col,
        message: `not valid YAML: ${shorten(syntax.message.split('\n')[0] ?? '', 200)}`,
      });
      return undefined;
    }
    const contents = this.doc.contents;
    // An empty document: a stray "---", or only comments.
    if (contents === null || (isScalar(contents) && contents.value === null)) return undefined;
    let value: unknown;
    try {
      value = this.doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      this.error([], 'yaml_syntax', `cannot read the document: ${shorten((e as Error).message, 200)}`);
      return undefined;
    }
    return this.policy(value);
  }

  private policy(value: unknown): AuthorizationPolicy | RateLimitPolicy | undefined {
    const top = this.mapping(value, [], TOP_FIELDS);
    if (!top) return undefined;
    // Read the name first so that every later message can carry it.
    const metaRaw = top.metadata;
    if (isPlainObject(metaRaw) && typeof metaRaw.name === 'string' && metaRaw.name !== '') this.name = metaRaw.name;
    if (isPlainObject(metaRaw) && typeof metaRaw.namespace === 'string' && metaRaw.namespace !== '') this.namespace = metaRaw.namespace;
    if (top.kind === RATE_LIMIT_KIND) return this.rateLimitPolicy(top);

    const apiVersion = top.apiVersion;
    if (apiVersion === undefined) this.error(['apiVersion'], 'wrong_api_version', `missing; expected ${API_VERSIONS.join(' or ')}`);
    else if (!(API_VERSIONS as readonly unknown[]).includes(apiVersion)) {
      this.error(['apiVersion'], 'wrong_api_version', `${quoteBounded(apiVersion)} is not supported; expected ${API_VERSIONS.join(' or ')}`);
    }
    if (top.kind === undefined) this.error(['kind'], 'wrong_kind', `missing; expected ${KIND}`);
    else if (top.kind !== KIND) {
      this.error(['kind'], 'wrong_kind', `${quoteBounded(top.kind)}: only ${KIND} and ${RATE_LIMIT_KIND} documents belong in the policy directory`);
    }
    if (this.errorCount() > 0) return undefined; // another kind of document: its fields mean something else

    const meta = this.metadata(top.metadata);
    if (top.spec === undefined) {
      this.error([], 'missing_spec', 'spec is required (write "spec: {}" for a policy that matches nothing)');
      return undefined;
    }
    // The spec is checked even when the metadata is bad, so that one pass reports everything.
    const spec = this.mapping(top.spec, ['spec'], SPEC_FIELDS);
    if (!spec) return undefined;

    const action = this.action(spec.action, spec.provider);
    const selector = spec.selector === undefined ? undefined : this.selector(spec.selector);
    const targetRefs: TargetRef[] = [];
    if (spec.targetRef !== undefined) {
      const ref = this.targetRef(spec.targetRef, ['spec', 'targetRef']);
      if (ref) targetRefs.push(ref);
    }
    if (spec.targetRefs !== undefined) {
      const list = this.list(spec.targetRefs, ['spec', 'targetRefs'], true, MAX_TARGET_REFS);
      list?.forEach((r, i) => {
        const ref = this.targetRef(r, ['spec', 'targetRefs', i]);
        if (ref) targetRefs.push(ref);
      });
    }
    const targets = ['selector', 'targetRef', 'targetRefs'].filter((k) => spec[k] !== undefined);
    if (targets.length > 1) {
      this.error(['spec', targets[1]!], 'conflicting_fields', `only one of selector, targetRef and targetRefs can be set (found ${targets.join(' and ')})`);
    }
    const rules: Rule[] = [];
    if (spec.rules !== undefined) {
      const list = this.list(spec.rules, ['spec', 'rules'], true, MAX_RULES);
      list?.forEach((r, i) => {
        const rule = this.rule(r, ['spec', 'rules', i]);
        if (rule) rules.push(rule);
      });
    }
    if (action === 'DENY' && (spec.rules === undefined || (Array.isArray(spec.rules) && spec.rules.length === 0))) {
      this.error(['spec', 'rules'], 'deny_without_rules', 'a DENY policy without rules never matches (Istio refuses it); add a rule "{}" to deny every request');
    }
    if (meta?.dryRunSet && action && action !== 'ALLOW' && action !== 'DENY') {
      this.error(['metadata', 'annotations', DRY_RUN_ANNOTATION], 'bad_annotation', `${DRY_RUN_ANNOTATION} is supported only on ALLOW and DENY policies, not ${action}`);
    }
    if (!meta || !action || this.errorCount() > 0) return undefined;
    return Object.freeze({
      name: meta.name,
      ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
      id: policyId(meta.name, meta.namespace),
      apiVersion: apiVersion as string,
      action,
      dryRun: meta.dryRun,
      rules,
      ...(selector ? { selector } : {}),
      targetRefs,
      origin: { file: this.file, doc: this.index, ...this.lineOf([]) },
    });
  }

  private rateLimitPolicy(top: Record<string, unknown>): RateLimitPolicy | undefined {
    if (top.apiVersion !== RATE_LIMIT_API_VERSION) {
      const got = top.apiVersion === undefined ? 'missing' : `${quoteBounded(top.apiVersion)} is not supported`;
      this.error(['apiVersion'], 'wrong_api_version', `${got}; expected ${RATE_LIMIT_API_VERSION}`);
    }
    const meta = this.metadata(top.metadata);
    if (meta?.dryRun) this.error(['metadata', 'annotations', DRY_RUN_ANNOTATION], 'bad_annotation', `${RATE_LIMIT_KIND} has no dry-run mode`);
    if (top.spec === undefined) {
      this.error([], 'missing_spec', 'spec is required');
      return undefined;
    }
    const spec = this.mapping(top.spec, ['spec'], ['limits']);
    if (!spec) return undefined;
    if (spec.limits === undefined) {
      this.error(['spec'], 'missing_field', 'spec.limits is required: a list of {name, match, rate}');
      return undefined;
    }
    const limits: RateLimit[] = [];
    const names = new Set<string>();
    this.list(spec.limits, ['spec', 'limits'])?.forEach((l, i) => {
      const path = ['spec', 'limits', i];
      const limit = this.rateLimit(l, path);
      if (!limit) return;
      if (names.has(limit.name)) this.error([...path, 'name'], 'duplicate_limit', `limit ${limit.name} is defined twice in this policy`);
      names.add(limit.name);
      limits.push(limit);
    });
    if (!meta || this.errorCount() > 0) return undefined;
    return Object.freeze({
      name: meta.name,
      ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
      id: policyId(meta.name, meta.namespace),
      limits,
      origin: { file: this.file, doc: this.index, ...this.lineOf([]) },
    });
  }

  private rateLimit(value: unknown, path: Path): RateLimit | undefined {
    const m = this.mapping(value, path, ['name', 'match', 'rate', 'partition']);
    if (!m) return undefined;
    const name = m.name;
    if (typeof name !== 'string' || !DNS_LABEL_RE.test(name) || name.length > 63) {
      this.error([...path, 'name'], name === undefined ? 'missing_field' : 'bad_name', 'name is required: lower-case letters, digits and "-", as in a Kubernetes name');
    }
    // No match: the limit applies to every allowed request.
    const match = m.match === undefined ? Object.freeze({}) : this.rule(m.match, [...path, 'match']);
    let rate: { requests: number; unit: RateLimitUnit; burst: number } | undefined;
    if (m.rate === undefined) this.error([...path, 'rate'], 'missing_field', 'rate is required, e.g. {requests: 100, per: minute}');
    else rate = this.rate(m.rate, [...path, 'rate']);
    let partition: RateLimitPartition = 'principal';
    if (m.partition !== undefined) {
      if ((RATE_LIMIT_PARTITIONS as readonly unknown[]).includes(m.partition)) partition = m.partition as RateLimitPartition;
      else this.error([...path, 'partition'], 'bad_value', `${quoteBounded(m.partition)}: expected one of ${RATE_LIMIT_PARTITIONS.join(', ')}`);
    }
    if (typeof name !== 'string' || !match || !rate) return undefined;
    return Object.freeze({ name, match, ...rate, partition });
  }

  private rate(value: unknown, path: Path): { requests: number; unit: RateLimitUnit; burst: number } | undefined {
    const r = this.mapping(value, path, ['requests', 'per', 'burst']);
    if (!r) return undefined;
    const count = (v: unknown, field: string): number | undefined => {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1e9) return v;
      this.error([...path, field], v === undefined ? 'missing_field' : 'bad_value', `${field} must be a whole number from 1 to 1000000000, got ${describe(v)}`);
      return undefined;
    };
    const requests = count(r.requests, 'requests');
    const units = Object.keys(RATE_LIMIT_UNITS);
    const unit = units.includes(r.per as string) ? (r.per as RateLimitUnit) : undefined;
    if (!unit) this.error([...path, 'per'], r.per === undefined ? 'missing_field' : 'bad_value', `per must be one of ${units.join(', ')}, got ${describe(r.per)}`);
    const burst = r.burst === undefined ? requests : count(r.burst, 'burst');
    if (requests === undefined || unit === undefined || burst === undefined) return undefined;
    return { requests, unit, burst };
  }

  private metadata(value: unknown): { name: string; namespace?: string; dryRun: boolean; dryRunSet: boolean } | undefined {
    const path = ['metadata'];
    if (value === undefined) {
      this.error(path, 'missing_name', 'metadata.name is required');
      return undefined;
    }
    const meta = this.mapping(value, path, METADATA_FIELDS);
    if (!meta) return undefined;
    let ok = true;
    const name = meta.name;
    if (name === undefined || name === '') {
      this.error(path, 'missing_name', 'metadata.name is required');
      ok = false;
    } else if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN_RE.test(name)) {
      this.error([...path, 'name'], 'bad_name', `${quoteBounded(name)} is not a valid name (lower-case letters, digits, "-" and ".")`);
      ok = false;
    }
    const namespace = meta.namespace;
    if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL_RE.test(namespace))) {
      this.error([...path, 'namespace'], 'bad_name', `${quoteBounded(namespace)} is not a valid namespace (lower-case letters, digits and "-")`);
      ok = false;
    }
    for (const key of ['labels', 'annotations'] as const) {
      if (meta[key] === undefined) continue;
      const m = this.mapping(meta[key], [...path, key], null);
      if (!m) {
        ok = false;
        continue;
      }
      for (const [k, v] of Object.entries(m)) {
        if (typeof v !== 'string') {
          this.error([...path, key, k], 'wrong_type', `must be a string (quote it: "${String(v)}")`);
          ok = false;
        }
      }
    }
    let dryRun = false;
    const annotations = isPlainObject(meta.annotations) ? meta.annotations : {};
    const dr = annotations[DRY_RUN_ANNOTATION];
    if (typeof dr === 'string') {
      if (BOOL_TRUE.includes(dr)) dryRun = true;
      else if (!BOOL_FALSE.includes(dr)) {
        this.error([...path, 'annotations', DRY_RUN_ANNOTATION], 'bad_annotation', `must be "true" or "false", got ${quoteBounded(dr)}`);
        ok = false;
      }
    }
    if (!ok) return undefined;
    return { name: name as string, ...(typeof namespace === 'string' ? { namespace } : {}), dryRun, dryRunSet: dr !== undefined };
  }

  private action(value: unknown, provider: unknown): PolicyAction | undefined {
    const path = ['spec', 'action'];
    let action: PolicyAction | undefined;
    if (value === undefined) action = 'ALLOW'; // Istio's default
    else if (value === 'ALLOW' || value === 'DENY' || value === 'AUDIT') action = value;
    else if (value === 'CUSTOM') {
      this.error(path, 'custom_refused', 'CUSTOM delegates to an external authorizer; meshid is the external authorizer, so write ALLOW, DENY or AUDIT policies for it');
    } else if (typeof value === 'string' && ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'].includes(value.toUpperCase())) {
      this.error(path, 'unknown_action', `${quoteBounded(value)}: actions are upper case (${value.toUpperCase()})`);
    } else {
      this.error(path, 'unknown_action', `${quoteBounded(value)} is not an action; expected ALLOW, DENY or AUDIT`);
    }
    if (provider !== undefined && value !== 'CUSTOM') {
      this.error(['spec', 'provider'], 'unknown_field', 'provider is only meaningful with action CUSTOM, which meshid refuses');
    }
    return action;
  }

  private selector(value: unknown): Record<string, string> | undefined {
    const path = ['spec', 'selector'];
    const sel = this.mapping(value, path, ['matchLabels']);
    if (!sel) return undefined;
    const labels = sel.matchLabels === undefined ? {} : this.mapping(sel.matchLabels, [...path, 'matchLabels'], null);
    if (!labels) return undefined;
    if (Object.keys(labels).length === 0) {
      this.warn(path, 'empty_selector', 'a selector without labels selects every workload (Istio warns: remove the selector or add matchLabels)');
    }
    if (Object.keys(labels).length > MAX_LABELS) this.error([...path, 'matchLabels'], 'too_many_items', `at most ${MAX_LABELS} labels (the CRD schema's limit)`);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) {
      const at = [...path, 'matchLabels', k];
      if (k === '') this.error(at, 'bad_selector', 'a label key must not be empty');
      else if (k.includes('*')) this.error(at, 'bad_selector', 'wildcards are not supported in selector label keys');
      if (typeof v !== 'string') this.error(at, 'wrong_type', 'a label value must be a string');
      else if (v.includes('*')) this.error(at, 'bad_selector', 'wildcards are not supported in selector label values');
      else if (v.length > MAX_LABEL_VALUE) this.error(at, 'value_too_long', `a label value has at most ${MAX_LABEL_VALUE} characters`);
      else out[k] = v;
    }
    return Object.freeze(out);
  }

  private targetRef(value: unknown, path: Path): TargetRef | undefined {
    const ref = this.mapping(value, path, TARGET_REF_FIELDS);
    if (!ref) return undefined;
    let ok = true;
    for (const k of ['kind', 'name'] as const) {
      if (typeof ref[k] !== 'string' || ref[k] === '') {
        this.error([...path, k], ref[k] === undefined ? 'missing_field' : 'wrong_type', `${k} is required and must be a non-empty string`);
        ok = false;
      }
    }
    for (const k of ['group', 'namespace'] as const) {
      if (ref[k] !== undefined && typeof ref[k] !== 'string') {
        this.error([...path, k], 'wrong_type', 'must be a string');
        ok = false;
      }
    }
    if (!ok) return undefined;
    const group = (ref.group as string | undefined) ?? '';
    const kind = ref.kind as string;
    const name = ref.name as string;
    if (group.length > 253 || !GROUP_RE.test(group)) {
      this.error([...path, 'group'], 'bad_target_ref', `${quoteBounded(group)} is not a valid API group`);
      ok = false;
    }
    if (kind.length > 63 || !KIND_RE.test(kind)) {
      this.error([...path, 'kind'], 'bad_target_ref', `${quoteBounded(kind)} is not a valid kind`);
      ok = false;
    }
    if (name.length > 253) {
      this.error([...path, 'name'], 'value_too_long', 'a target name has at most 253 characters');
      ok = false;
    }
    if (ok && !TARGET_KINDS.has(`${group === '' ? 'core' : group}/${kind}`)) {
      this.error([...path, 'kind'], 'bad_target_ref', `a target must be a Service, ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io); got ${group || 'core'}/${kind}`);
      ok = false;
    }
    if (typeof ref.namespace === 'string' && ref.namespace !== '') {
      this.error([...path, 'namespace'], 'bad_target_ref', 'cross-namespace references are not supported (Istio refuses targetRef.namespace)');
      ok = false;
    }
    if (!ok) return undefined;
    return Object.freeze({
      kind: ref.kind as string,
      name: ref.name as string,
      ...(typeof ref.group === 'string' ? { group: ref.group } : {}),
      ...(typeof ref.namespace === 'string' ? { namespace: ref.namespace } : {}),
    });
  }

  private rule(value: unknown, path: Path): Rule | undefined {
    if (value === null || value === undefined) {
      this.error(path, 'wrong_type', 'a rule must be a mapping (write "{}" for a rule that matches every request)');
      return undefined;
    }
    const r = this.mapping(value, path, RULE_FIELDS);
    if (!r) return undefined;
    const rule: { from?: Source[]; to?: Operation[]; when?: Condition[] } = {};
    if (r.from !== undefined) {
      const list = this.list(r.from, [...path, 'from'], false, MAX_FROM);
      if (list) rule.from = this.entries(list, [...path, 'from'], 'source', (v, p) => this.source(v, p));
    }
    if (r.to !== undefined) {
      const list = this.list(r.to, [...path, 'to']);
      if (list) rule.to = this.entries(list, [...path, 'to'], 'operation', (v, p) => this.operation(v, p));
    }
    if (r.when !== undefined) {
      const list = this.list(r.when, [...path, 'when'], true);
      if (list && list.length > 0) {
        rule.when = [];
        list.forEach((c, i) => {
          const cond = this.condition(c, [...path, 'when', i]);
          if (cond) rule.when!.push(cond);
        });
      }
    }
    return Object.freeze(rule);
  }

  /** `from: [{source: ...}]` and `to: [{operation: ...}]`: a wrapper with exactly one key. */
  private entries<T>(list: unknown[], path: Path, key: string, read: (v: unknown, p: Path) => T | undefined): T[] {
    const out: T[] = [];
    list.forEach((entry, i) => {
      const wrapper = this.mapping(entry, [...path, i], [key]);
      if (!wrapper) return;
      if (wrapper[key] === undefined || wrapper[key] === null) {
        this.error([...path, i], 'missing_field', `each entry needs "${key}:"`);
        return;
      }
      const v = read(wrapper[key], [...path, i, key]);
      if (v) out.push(v);
    });
    return out;
  }

  private source(value: unknown, path: Path): Source | undefined {
    const s = this.fields(value, path, SOURCE_FIELDS, SOURCE_KINDS, 'empty_source');
    if (!s) return undefined;
    const sa = s.serviceAccounts ?? s.notServiceAccounts;
    if (sa !== undefined && (s.principals || s.notPrincipals || s.namespaces || s.notNamespaces)) {
      this.error(path, 'conflicting_fields', 'cannot set serviceAccounts with namespaces or principals');
    }
    for (const field of ['serviceAccounts', 'notServiceAccounts'] as const) this.serviceAccountList(s[field], [...path, field]);
    return s;
  }

  /** CRD maxItems, and a namespace for "<sa>" values (Istio takes the policy's own). */
  private serviceAccountList(values: readonly string[] | undefined, path: Path): void {
    if (!values) return;
    if (values.length > MAX_SERVICE_ACCOUNTS) this.error(path, 'too_many_items', `at most ${MAX_SERVICE_ACCOUNTS} service accounts (Istio's limit)`);
    if (this.namespace === undefined) {
      values.forEach((v, i) => {
        if (!v.includes('/')) this.error([...path, i], 'missing_namespace', `${quoteBounded(v)} names a service account of the policy's namespace, and this policy has no metadata.namespace; write "<namespace>/${v}" or set metadata.namespace`);
      });
    }
  }

  private operation(value: unknown, path: Path): Operation | undefined {
    return this.fields(value, path, OPERATION_FIELDS, OPERATION_KINDS, 'empty_operation');
  }

  private fields<K extends string>(
    value: unknown,
    path: Path,
    names: readonly K[],
    kinds: Readonly<Record<K, ValueKind>>,
    emptyCode: PolicyIssueCode,
  ): Partial<Record<K, readonly string[]>> | undefined {
    const m = this.mapping(value, path, names);
    if (!m) return undefined;
    const out: Partial<Record<K, readonly string[]>> = {};
    let any = false;
    for (const name of names) {
      if (m[name] === undefined) continue;
      const values = this.values(m[name], [...path, name], kinds[name], true);
      if (values) out[name] = values;
      if (Array.isArray(m[name]) && (m[name] as unknown[]).length > 0) any = true;
    }
    // Istio: a source or operation whose lists are all empty is refused. One holding only a
    // misspelt field already has its error.
    if (!any && Object.keys(m).every((k) => (names as readonly string[]).includes(k))) {
      this.error(path, emptyCode, `must set at least one of ${names.join(', ')} to a non-empty list`);
    }
    return Object.freeze(out);
  }

  private condition(value: unknown, path: Path): Condition | undefined {
    const c = this.mapping(value, path, CONDITION_FIELDS);
    if (!c) return undefined;
    if (typeof c.key !== 'string' || c.key === '') {
      this.error([...path, 'key'], c.key === undefined ? 'missing_field' : 'wrong_type', 'key is required and must be a non-empty string');
      return undefined;
    }
    const key = parseConditionKey(c.key);
    if ('code' in key) {
      this.error([...path, 'key'], key.code, key.message);
      return undefined;
    }
    const cond: { key: string; values?: readonly string[]; notValues?: readonly string[] } = { key: c.key };
    for (const field of ['values', 'notValues'] as const) {
      if (c[field] === undefined) continue;
      const v = this.values(c[field], [...path, field], key.kind, false);
      if (v) cond[field] = v;
      if (v && key.kind === 'serviceAccount' && v.length > MAX_SERVICE_ACCOUNTS) {
        this.error([...path, field], 'too_many_items', `at most ${MAX_SERVICE_ACCOUNTS} service accounts (Istio's limit)`);
      }
      if (v && key.kind === 'serviceAccount') this.serviceAccountList(v, [...path, field]);
    }
    const nonEmpty = (l: unknown) => Array.isArray(l) && l.length > 0;
    if (!nonEmpty(c.values) && !nonEmpty(c.notValues)) {
      this.error(path, 'when_without_values', `at least one of values or notValues must be set to a non-empty list for key ${c.key}`);
      return undefined;
    }
    return Object.freeze(cond);
  }

  private values(value: unknown, path: Path, kind: ValueKind, inField: boolean): readonly string[] | undefined {
    const list = this.list(value, path, true);
    if (!list) return undefined;
    const out: string[] = [];
    list.forEach((v, i) => {
      if (typeof v !== 'string') {
        const hint = typeof v === 'number' ? ` (quote it: "${v}")` : '';
        this.error([...path, i], 'wrong_type', `must be a string, got ${describe(v)}${hint}`);
        return;
      }
      const problem = valueProblem(kind, v, inField);
      if (problem) this.error([...path, i], problem.code, problem.message);
      else out.push(v);
    });
    return Object.freeze(out);
  }

  /** A mapping whose keys are checked against `allowed` (null: any keys). */
  private mapping(value: unknown, path: Path, allowed: readonly string[] | null): Record<string, unknown> | undefined {
    if (!isPlainObject(value)) {
      this.error(path, 'wrong_type', `expected a mapping, got ${describe(value)}`);
      return undefined;
    }
    if (allowed) {
      for (const key of Object.keys(value)) {
        if (allowed.includes(key)) continue;
        const hint = closest(key, allowed);
        this.error([...path, key], 'unknown_field', `unknown field${hint ? ` (did you mean ${hint}?)` : ''}; expected ${allowed.join(', ')}`);
      }
    }
    return value;
  }

  /**
   * A list; an explicit empty list is an error unless allowEmpty (Istio refuses `from: []` and
   * `to: []`; elsewhere it reads [] as "not set", and lint warns). max: the CRD's maxItems.
   */
  private list(value: unknown, path: Path, allowEmpty = false, max = Infinity): unknown[] | undefined {
    if (!Array.isArray(value)) {
      this.error(path, 'wrong_type', `expected a list, got ${describe(value)}`);
      return undefined;
    }
    if (value.length === 0 && !allowEmpty) {
      this.error(path, 'empty_list', 'must not be an empty list (Istio refuses it); remove the field or add entries');
      return undefined;
    }
    if (value.length > max) {
      this.error(path, 'too_many_items', `at most ${max} entries (the CRD schema's limit), got ${value.length}`);
      return undefined;
    }
    return value;
  }

  private errorCount(): number {
    return this.found.filter((i) => i.severity === 'error').length;
  }

  private warn(path: Path, code: PolicyIssueCode, message: string): void {
    this.issue('warning', path, code, message);
  }

  private error(path: Path, code: PolicyIssueCode, message: string): void {
    this.issue('error', path, code, message);
  }

  private issue(severity: Severity, path: Path, code: PolicyIssueCode, message: string): void {
    this.found.push({
      severity,
      code,
      file: this.file,
      doc: this.index,
      ...(path.length > 0 ? { path: pathText(path) } : {}),
      ...this.lineOf(path),
      message,
    });
  }

  /** The line of the deepest node on path that exists (the key, for a mapping entry). */
  private lineOf(path: Path): { line?: number } {
    let node: unknown = this.doc.contents;
    let offset: number | undefined = rangeStart(node);
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        offset = rangeStart(pair.key) ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        offset = rangeStart(node) ?? offset;
      } else {
        break;
      }
    }
    return offset === undefined ? {} : { line: this.lines.linePos(offset).line };
  }
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as YamlNode | null | undefined)?.range;
  return range ? range[0] : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${quoteBounded(v)}`;
}

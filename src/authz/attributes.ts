/**
 * What each policy field and `when` key compares against, and which values it accepts: Istio's
 * webhook rules (pkg/config/security ValidateAttribute and friends) plus its CRD schema limits.
 * Shared by validation (what may be written) and compilation (how it matches), so the two cannot
 * drift. Pure.
 */
import { quoteBounded } from '../lib/quote.js';
import { closest } from '../lib/edit-distance.js';
import { parseCidr } from '../lib/ip.js';
import { pathTemplateProblem } from './paths.js';
import type { Operation, Source } from './policy.js';

/** The request attribute a value is compared with, which fixes its syntax and its matching. */
export type ValueKind =
  | 'principal'
  | 'namespace'
  | 'serviceAccount'
  | 'trustDomain'
  | 'requestPrincipal'
  | 'audience'
  | 'presenter'
  | 'claim'
  | 'cnfBound'
  | 'metadata'
  | 'ip'
  | 'remoteIp'
  | 'destinationIp'
  | 'port'
  | 'host'
  | 'method'
  | 'path'
  | 'header'
  | 'sni';

export const SOURCE_KINDS: Readonly<Record<keyof Source, ValueKind>> = {
  principals: 'principal',
  notPrincipals: 'principal',
  requestPrincipals: 'requestPrincipal',
  notRequestPrincipals: 'requestPrincipal',
  namespaces: 'namespace',
  notNamespaces: 'namespace',
  serviceAccounts: 'serviceAccount',
  notServiceAccounts: 'serviceAccount',
  trustDomains: 'trustDomain',
  notTrustDomains: 'trustDomain',
  ipBlocks: 'ip',
  notIpBlocks: 'ip',
  remoteIpBlocks: 'remoteIp',
  notRemoteIpBlocks: 'remoteIp',
};

export const OPERATION_KINDS: Readonly<Record<keyof Operation, ValueKind>> = {
  hosts: 'host',
  notHosts: 'host',
  ports: 'port',
  notPorts: 'port',
  methods: 'method',
  notMethods: 'method',
  paths: 'path',
  notPaths: 'path',
};

/** A parsed `when` key: the attribute, plus what the brackets name. */
export interface ConditionKey {
  readonly kind: ValueKind;
  /** request.headers[<name>]: lower-cased (Envoy matches header names case-insensitively). */
  readonly header?: string;
  /** request.auth.claims[a][b]: the claim path. */
  readonly claim?: readonly string[];
  /** experimental.envoy.filters.<f>[<k>]: the filter metadata namespace and key. */
  readonly filter?: string;
  readonly metadataKey?: string;
}

const SIMPLE_KEYS: Readonly<Record<string, ValueKind>> = {
  'source.ip': 'ip',
  'remote.ip': 'remoteIp',
  'source.namespace': 'namespace',
  'source.principal': 'principal',
  'source.serviceAccount': 'serviceAccount',
  'source.trustDomain': 'trustDomain',
  'request.auth.principal': 'requestPrincipal',
  'request.auth.audiences': 'audience',
  'request.auth.presenter': 'presenter',
  // meshid's (not Istio's): the verified token is certificate-bound (RFC 8705) to this peer.
  'request.auth.cnf_bound': 'cnfBound',
  'destination.ip': 'destinationIp',
  'destination.port': 'port',
  'connection.sni': 'sni',
};

const HEADERS = 'request.headers';
const CLAIMS = 'request.auth.claims';
const EXPERIMENTAL = 'experimental.envoy.filters.';

/** Keys Istio refuses with a reason of its own. */
const RETIRED_KEYS: Readonly<Record<string, string>> = {
  'destination.namespace': 'is replaced by the policy\'s metadata.namespace',
  'destination.name': 'was only supported in v1alpha1',
  'destination.user': 'was only supported in v1alpha1',
};

export const KNOWN_CONDITION_KEYS: readonly string[] = [
  'request.headers[<name>]',
  ...Object.keys(SIMPLE_KEYS),
  'request.auth.claims[<claim>] (nested: [<a>][<b>])',
  'experimental.envoy.filters.<filter>[<key>]',
];

export type ConditionKeyProblem = { readonly code: 'unknown_when_key'; readonly message: string };

/** Istio's validateMapKey: "<prefix>[<non-empty>]". */
function mapKeyOk(key: string): boolean {
  const open = key.indexOf('[');
  return key.endsWith(']') && open > 0 && open < key.length - 2;
}

export function parseConditionKey(key: string): ConditionKey | ConditionKeyProblem {
  const simple = SIMPLE_KEYS[key];
  if (simple) return { kind: simple };
  const bad = (why: string): ConditionKeyProblem => ({ code: 'unknown_when_key', message: `${quoteBounded(key)}: ${why}` });
  if (key.startsWith(HEADERS)) {
    const rest = key.slice(HEADERS.length);
    if (!mapKeyOk(key) || !rest.startsWith('[')) return bad('expected request.headers[<name>] with a non-empty name');
    return { kind: 'header', header: rest.slice(1, -1).toLowerCase() };
  }
  if (key.startsWith(CLAIMS)) {
    const claim = mapKeyOk(key) ? claimPath(key.slice(CLAIMS.length)) : undefined;
    if (!claim) return bad('expected request.auth.claims[<claim>], or [<a>][<b>] for a nested claim');
    return { kind: 'claim', claim };
  }
  if (key.startsWith(EXPERIMENTAL)) {
    if (!mapKeyOk(key)) return bad('expected experimental.envoy.filters.<filter>[<key>]');
    const body = key.slice('experimental.'.length, -1);
    const open = body.indexOf('[');
    return { kind: 'metadata', filter: body.slice(0, open), metadataKey: body.slice(open + 1) };
  }
  const retired = RETIRED_KEYS[key];
  if (retired) return bad(`${retired} (Istio refuses it)`);
  if (key.startsWith('destination.labels')) return bad('is replaced by the workload selector (Istio refuses it)');
  return { code: 'unknown_when_key', message: `unknown key ${quoteBounded(key)}${suggestKey(key)}; known keys: ${KNOWN_CONDITION_KEYS.join(', ')}` };
}

/**
 * Istio's extractNameInNestedBrackets: "[a][b]" is the path a.b; anything else that is one
 * bracketed name (even "[a.b]" or "[[x]]") is a single claim named by what is inside.
 */
function claimPath(s: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '[') return single(s);
    const end = s.indexOf(']', i + 1);
    const nextOpen = s.indexOf('[', i + 1);
    if (end === -1 || (nextOpen !== -1 && nextOpen < end)) return single(s);
    out.push(s.slice(i + 1, end));
    i = end + 1;
  }
  return out;
}

function single(s: string): string[] | undefined {
  return s.startsWith('[') && s.endsWith(']') ? [s.slice(1, -1)] : undefined;
}

function suggestKey(key: string): string {
  if (/^(request\.)?headers?\b/i.test(key)) return ' (did you mean request.headers[<name>]?)';
  const hit = closest(key, Object.keys(SIMPLE_KEYS));
  return hit ? ` (did you mean ${hit}?)` : '';
}

export interface ValueProblem {
  readonly code: 'empty_value' | 'bad_value' | 'bad_cidr' | 'bad_port' | 'bad_service_account' | 'bad_trust_domain' | 'bad_path_template' | 'value_too_long';
  readonly message: string;
}

/** Istio's limit on service-account values (CRD maxLength, webhook CheckServiceAccount). */
export const MAX_SERVICE_ACCOUNT_LENGTH = 320;
/** CRD maxItems of serviceAccounts/notServiceAccounts; the webhook checks source.serviceAccount too. */
export const MAX_SERVICE_ACCOUNTS = 16;

/**
 * Why raw is not a valid value for kind, or undefined when it is. inField: the value sits in a
 * source field rather than a `when` (Istio checks trustDomains harder than source.trustDomain).
 */
export function valueProblem(kind: ValueKind, raw: string, inField: boolean): ValueProblem | undefined {
  if (raw === '') return { code: 'empty_value', message: 'empty value (Istio refuses empty strings)' };
  switch (kind) {
    case 'ip':
    case 'remoteIp':
    case 'destinationIp': {
      const block = parseCidr(raw);
      return 'error' in block ? { code: 'bad_cidr', message: block.error } : undefined;
    }
    case 'port':
      // Istio parses ports with strconv.ParseUint: digits only, at most 65535 (0 and leading zeros pass).
      if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
        return { code: 'bad_port', message: `${quoteBounded(raw)} is not a port number (0-65535; wildcards and ranges are not allowed)` };
      }
      return undefined;
    case 'serviceAccount':
      return serviceAccountProblem(raw);
    case 'cnfBound':
      return raw === 'true' || raw === 'false' ? undefined : { code: 'bad_value', message: `${quoteBounded(raw)}: request.auth.cnf_bound takes "true" or "false"` };
    case 'trustDomain':
      return trustDomainProblem(raw, inField);
    case 'path': {
      const problem = pathTemplateProblem(raw);
      return problem ? { code: 'bad_path_template', message: problem } : undefined;
    }
    default:
      return undefined;
  }
}

function serviceAccountProblem(raw: string): ValueProblem | undefined {
  const bad = (why: string): ValueProblem => ({ code: 'bad_service_account', message: `${quoteBounded(raw)}: ${why}` });
  if (raw.includes('*')) return bad('wildcards are not allowed in service accounts');
  const slashes = raw.split('/').length - 1;
  if (slashes > 1) return bad('expected "<serviceAccount>" or "<namespace>/<serviceAccount>"');
  if (raw.length > MAX_SERVICE_ACCOUNT_LENGTH) return { code: 'value_too_long', message: `longer than ${MAX_SERVICE_ACCOUNT_LENGTH} characters` };
  if (slashes === 1) {
    const [ns, sa] = raw.split('/') as [string, string];
    if (ns === '') return bad('the namespace before "/" is empty');
    if (sa === '') return bad('the service account after "/" is empty');
  }
  return undefined;
}

/** Istio's CheckWildcardValues (+ no "/" for the trustDomains fields: CheckTrustDomainValues). */
function trustDomainProblem(raw: string, inField: boolean): ValueProblem | undefined {
  const bad = (why: string): ValueProblem => ({ code: 'bad_trust_domain', message: `${quoteBounded(raw)}: ${why}` });
  const stars = raw.split('*').length - 1;
  if (stars > 1) return bad('at most one "*" is allowed');
  if (stars === 1 && raw !== '*' && !raw.startsWith('*') && !raw.endsWith('*')) return bad('"*" is allowed only at the start or the end');
  if (inField && raw.includes('/')) return bad('a trust domain has no "/" (write the trust domain alone, without spiffe:// or a path)');
  return undefined;
}

/**
 * What each policy field and `when` key compares against, and which values it accepts. Shared by
 * validation (what may be written) and compilation (how it matches), so the two cannot drift. Pure.
 */
import { closest } from '../lib/edit-distance.js';
import { parseCidr } from './cidr.js';
import { parsePattern } from './patterns.js';
import type { Operation, Source } from './policy.js';

/** The request attribute a value is compared with, which fixes its syntax and its matching. */
export type ValueKind = 'principal' | 'namespace' | 'ip' | 'remoteIp' | 'destinationIp' | 'port' | 'host' | 'method' | 'path' | 'header' | 'sni';

export const SOURCE_KINDS: Readonly<Record<keyof Source, ValueKind>> = {
  principals: 'principal',
  notPrincipals: 'principal',
  namespaces: 'namespace',
  notNamespaces: 'namespace',
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

/** A parsed `when` key: the attribute, plus the header name for request.headers[...]. */
export interface ConditionKey {
  readonly kind: ValueKind;
  /** Lower-cased header name (Envoy reports header names in lower case). */
  readonly header?: string;
}

const SIMPLE_KEYS: Readonly<Record<string, ValueKind>> = {
  'source.ip': 'ip',
  'remote.ip': 'remoteIp',
  'source.namespace': 'namespace',
  'source.principal': 'principal',
  'destination.ip': 'destinationIp',
  'destination.port': 'port',
  'connection.sni': 'sni',
};

export const KNOWN_CONDITION_KEYS: readonly string[] = ['request.headers[<name>]', ...Object.keys(SIMPLE_KEYS)];

export type ConditionKeyProblem = { readonly code: 'unsupported_field' | 'unknown_when_key'; readonly message: string };

export function parseConditionKey(key: string): ConditionKey | ConditionKeyProblem {
  const simple = SIMPLE_KEYS[key];
  if (simple) return { kind: simple };
  const header = /^request\.headers\[(.*)\]$/.exec(key);
  if (header) {
    const name = header[1]!;
    if (name.trim() === '' || /[\s[\]]/.test(name)) {
      return { code: 'unknown_when_key', message: `${JSON.stringify(key)}: the header name inside request.headers[...] is empty or invalid` };
    }
    return { kind: 'header', header: name.toLowerCase() };
  }
  if (key === 'request.auth' || key.startsWith('request.auth.')) {
    return { code: 'unsupported_field', message: `${JSON.stringify(key)}: request.auth.* keys need JWT authentication, which meshid does not support yet` };
  }
  if (key.startsWith('experimental.')) {
    return { code: 'unsupported_field', message: `${JSON.stringify(key)}: experimental keys are not supported by meshid` };
  }
  return { code: 'unknown_when_key', message: `unknown key ${JSON.stringify(key)}${suggestKey(key)}; known keys: ${KNOWN_CONDITION_KEYS.join(', ')}` };
}

function suggestKey(key: string): string {
  if (/^(request\.)?headers?\b/i.test(key)) return ' (did you mean request.headers[<name>]?)';
  const hit = closest(key, Object.keys(SIMPLE_KEYS));
  return hit ? ` (did you mean ${hit}?)` : '';
}

export interface ValueProblem {
  readonly code: 'empty_value' | 'bad_cidr' | 'bad_port' | 'principal_spiffe_prefix' | 'unsupported_path_template' | 'bad_wildcard';
  readonly message: string;
}

/** Why raw is not a valid value for kind, or undefined when it is. */
export function valueProblem(kind: ValueKind, raw: string): ValueProblem | undefined {
  if (raw === '') return { code: 'empty_value', message: 'empty value (Istio refuses empty strings)' };
  switch (kind) {
    case 'ip':
    case 'remoteIp':
    case 'destinationIp': {
      const block = parseCidr(raw);
      return 'error' in block ? { code: 'bad_cidr', message: block.error } : undefined;
    }
    case 'port':
      if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
        return { code: 'bad_port', message: `${JSON.stringify(raw)} is not a port number (1-65535; wildcards and ranges are not allowed)` };
      }
      return undefined;
    case 'principal':
      if (/^\*?spiffe:\/\//i.test(raw)) {
        const fixed = raw.replace(/^(\*?)spiffe:\/\//i, '$1');
        return {
          code: 'principal_spiffe_prefix',
          message: `${JSON.stringify(raw)}: write principals without "spiffe://" (Istio prepends it, so this would never match); write ${JSON.stringify(fixed)}`,
        };
      }
      break;
    case 'path':
      if (/\{\*\*?\}/.test(raw)) return { code: 'unsupported_path_template', message: `${JSON.stringify(raw)}: path templates ({*}, {**}) are not supported by meshid` };
      break;
    default:
      break;
  }
  const pattern = parsePattern(raw);
  return 'error' in pattern ? { code: 'bad_wildcard', message: pattern.error } : undefined;
}

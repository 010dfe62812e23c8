/**
 * The policy model: Istio AuthorizationPolicy documents after strict validation. Values are kept
 * as written (validated, not yet compiled) so lint and check output can quote them; an empty list
 * is kept too (Istio reads it as "not set", and lint warns about it). Pure.
 */

/** CUSTOM is refused at validation: meshid is itself the external authorizer. */
export type PolicyAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** Where a policy came from, for every message that names it. */
export interface PolicyOrigin {
  /** The file as the operator knows it (relative to the policy directory). */
  readonly file: string;
  /** 1-based index of the YAML document in the file. */
  readonly doc: number;
  /** 1-based line of the document's first line, when known. */
  readonly line?: number;
}

export interface TargetRef {
  readonly group?: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface Source {
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  /** "<iss>/<sub>" of the request's verified JWT (RequestAuth). */
  readonly requestPrincipals?: readonly string[];
  readonly notRequestPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  /** "<sa>" (the policy's namespace) or "<ns>/<sa>". */
  readonly serviceAccounts?: readonly string[];
  readonly notServiceAccounts?: readonly string[];
  readonly trustDomains?: readonly string[];
  readonly notTrustDomains?: readonly string[];
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
  readonly remoteIpBlocks?: readonly string[];
  readonly notRemoteIpBlocks?: readonly string[];
}

export interface Operation {
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  readonly ports?: readonly string[];
  readonly notPorts?: readonly string[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}

export interface Condition {
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}

export interface Rule {
  /** Absent: any source. Each entry is one `- source: {...}`. */
  readonly from?: readonly Source[];
  /** Absent: any operation. Each entry is one `- operation: {...}`. */
  readonly to?: readonly Operation[];
  readonly when?: readonly Condition[];
}

export interface AuthorizationPolicy {
  readonly name: string;
  readonly namespace?: string;
  /** "namespace/name", or the name alone when the document has no namespace. */
  readonly id: string;
  readonly apiVersion: string;
  readonly action: PolicyAction;
  /** istio.io/dry-run: "true": evaluated and reported, never enforced. */
  readonly dryRun: boolean;
  /** A policy without rules never matches (on ALLOW: allows nothing). */
  readonly rules: readonly Rule[];
  /** Read and reported; every policy in the directory applies to this one workload. */
  readonly selector?: Readonly<Record<string, string>>;
  readonly targetRefs: readonly TargetRef[];
  readonly origin: PolicyOrigin;
}

export const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'trustDomains',
  'notTrustDomains',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const satisfies ReadonlyArray<keyof Source>;

export const OPERATION_FIELDS = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const satisfies ReadonlyArray<keyof Operation>;

export function policyId(name: string, namespace: string | undefined): string {
  return namespace ? `${namespace}/${name}` : name;
}

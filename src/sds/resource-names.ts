/**
 * SDS resource names and what they refer to. Pure: naming rules only, no I/O.
 *
 *   default                    the workload's certificate chain and key
 *   ROOTCA                     the trust bundle, as a validation context
 *   spiffe://<trust-domain>    the same bundle, named by its trust domain
 *   partners                   the bundle plus the partner CAs of --partner-cas
 *   file-cert:<cert>~<key>     a certificate chain and key read from files
 *   file-root:<path>           trusted roots read from a file
 *   named:<name>               a certificate and key the operator configured (--named-cert)
 */
import path from 'node:path';
import { SDS_FILE_CERT_PREFIX, SDS_FILE_ROOT_PREFIX, SDS_NAMED_CERT_PREFIX, SDS_PARTNERS_SECRET, SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../config/defaults.js';
import { MeshidError } from '../lib/errors.js';

export type SecretKind = 'workload' | 'bundle' | 'trust-domain-bundle' | 'partners' | 'file-cert' | 'file-root' | 'named-cert';

export type SecretRef =
  | { readonly kind: 'workload'; readonly name: string }
  | { readonly kind: 'bundle'; readonly name: string }
  | { readonly kind: 'partners'; readonly name: string }
  | { readonly kind: 'trust-domain-bundle'; readonly name: string; readonly trustDomain: string }
  | { readonly kind: 'file-cert'; readonly name: string; readonly certPath: string; readonly keyPath: string }
  | { readonly kind: 'file-root'; readonly name: string; readonly path: string }
  | { readonly kind: 'named-cert'; readonly name: string; readonly certName: string };

const SPIFFE_SCHEME = 'spiffe://';

export const SERVED_NAMES_HELP =
  `this agent serves "${SDS_WORKLOAD_SECRET}", "${SDS_ROOT_SECRET}", "spiffe://<trust-domain>", "${SDS_PARTNERS_SECRET}" (with --partner-cas), ` +
  `"${SDS_FILE_CERT_PREFIX}<cert>~<key>", "${SDS_FILE_ROOT_PREFIX}<path>" and "${SDS_NAMED_CERT_PREFIX}<name>"`;

export function unknownSecret(name: string, why: string): MeshidError {
  return new MeshidError('sds_unknown_secret', `unknown SDS secret ${JSON.stringify(name)}: ${why}`);
}

/** Classifies a requested name; throws MeshidError (not_found / invalid_argument) for names we do not serve. */
export function parseSecretName(name: string): SecretRef {
  if (name === SDS_WORKLOAD_SECRET) return { kind: 'workload', name };
  if (name === SDS_ROOT_SECRET) return { kind: 'bundle', name };
  if (name === SDS_PARTNERS_SECRET) return { kind: 'partners', name };
  if (name.startsWith(SPIFFE_SCHEME)) {
    const trustDomain = name.slice(SPIFFE_SCHEME.length);
    if (trustDomain === '' || trustDomain.includes('/')) {
      throw unknownSecret(name, `a bundle is named by its trust domain alone ("spiffe://<trust-domain>"); ${SERVED_NAMES_HELP}`);
    }
    return { kind: 'trust-domain-bundle', name, trustDomain };
  }
  if (name.startsWith(SDS_FILE_CERT_PREFIX)) {
    const rest = name.slice(SDS_FILE_CERT_PREFIX.length);
    const parts = rest.split('~');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new MeshidError('sds_bad_file_cert_name',
        `SDS secret ${JSON.stringify(name)}: expected ${SDS_FILE_CERT_PREFIX}<cert path>~<key path> (two paths separated by one "~")`);
    }
    return { kind: 'file-cert', name, certPath: absolute(name, parts[0]!), keyPath: absolute(name, parts[1]!) };
  }
  if (name.startsWith(SDS_FILE_ROOT_PREFIX)) {
    const p = name.slice(SDS_FILE_ROOT_PREFIX.length);
    if (p === '') throw new MeshidError('sds_bad_file_root_name', `SDS secret ${JSON.stringify(name)}: expected ${SDS_FILE_ROOT_PREFIX}<path>`);
    return { kind: 'file-root', name, path: absolute(name, p) };
  }
  if (name.startsWith(SDS_NAMED_CERT_PREFIX) && name.length > SDS_NAMED_CERT_PREFIX.length) {
    // Whether the agent holds it is the catalog's to say (the names come from --named-cert).
    return { kind: 'named-cert', name, certName: name.slice(SDS_NAMED_CERT_PREFIX.length) };
  }
  throw unknownSecret(name, SERVED_NAMES_HELP);
}

// Envoy and the agent do not share a working directory: a relative path would mean different
// files to each, so only absolute paths are accepted.
function absolute(name: string, p: string): string {
  if (!path.isAbsolute(p)) {
    throw new MeshidError('sds_relative_file_path', `SDS secret ${JSON.stringify(name)}: file path ${JSON.stringify(p)} must be absolute`);
  }
  return path.normalize(p);
}

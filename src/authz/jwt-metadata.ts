/**
 * Request principals from Envoy's jwt_authn filter (the usual Istio deployment: RequestAuthentication
 * is enforced in Envoy, which writes each verified payload into dynamic metadata under
 * `envoy.filters.http.jwt_authn`, keyed by the provider's `payload_in_metadata`, which Istio sets to
 * the issuer). The ext_authz filter forwards it in CheckRequest metadata_context when listed in
 * `metadata_context_namespaces`. Pure.
 */
import type { RequestAuth } from './facts.js';
import { requestAuthOfPayload } from './request-auth.js';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';

/**
 * The verified payload Envoy recorded: under key when given, else the first entry that is a JWT
 * payload (an object with string iss and sub).
 */
export function requestAuthFromMetadata(metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined, key: string | undefined): RequestAuth | undefined {
  const ns = metadata?.[JWT_AUTHN_FILTER];
  if (!ns) return undefined;
  if (key) {
    const v = Object.prototype.hasOwnProperty.call(ns, key) ? ns[key] : undefined;
    return isObject(v) ? requestAuthOfPayload(v) : undefined;
  }
  for (const k of Object.keys(ns)) {
    const v = ns[k];
    if (isObject(v)) {
      const auth = requestAuthOfPayload(v);
      if (auth) return auth;
    }
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Envoy's CheckRequest to the engine's input. Works on the message as protobufjs gives it
 * (snake_case fields; unset strings '' or absent, unset messages null or absent), whether decoded
 * from the wire or converted from JSON, so the server and `meshid authz check` share one path: the
 * generated permissive type (CheckRequest, not __Output) allows both. Pure.
 */
import type { AttributeContextHttpRequest, CheckRequest } from '../envoy/protos.js';
import type { AuthzInput, PeerCertificateStatus } from './facts.js';

export interface CertificateCheck {
  (urlEncodedPem: string): PeerCertificateStatus;
  /** True when a request naming a peer principal must carry the peer certificate (partner CAs are trusted). */
  readonly required?: () => boolean;
}

const CERTIFICATE_MISSING: PeerCertificateStatus = Object.freeze({
  status: 'invalid',
  reason:
    'Envoy reported a peer principal but forwarded no peer certificate; with partner CAs (--partner-cas) the certificate decides who the peer is: set include_peer_certificate: true on the ext_authz filter',
});

export type CheckInput =
  | {
      readonly ok: true;
      readonly input: AuthzInput;
      /** Envoy's x-request-id, for correlating the decision log with access logs. */
      readonly requestId: string | undefined;
    }
  | { readonly ok: false; readonly reason: string };

/**
 * The engine input for a CheckRequest, or why the request cannot be decided. certificate is
 * called only when Envoy sent a peer certificate.
 */
export function inputFromCheckRequest(req: CheckRequest | null | undefined, certificate: CertificateCheck): CheckInput {
  const attrs = req?.attributes;
  if (!attrs) return { ok: false, reason: 'the CheckRequest has no attributes' };
  const http = attrs.request?.http;
  if (!http) return { ok: false, reason: 'the CheckRequest has no attributes.request.http (meshid authorizes HTTP requests: use the HTTP ext_authz filter)' };
  const headers = headersOf(http);
  const method = http.method || headers[':method'];
  if (!method) return { ok: false, reason: 'the CheckRequest has no HTTP method' };
  const path = http.path || headers[':path'];
  if (!path) return { ok: false, reason: 'the CheckRequest has no HTTP path' };
  const host = http.host || headers[':authority'] || headers.host;

  const source = attrs.source;
  const encodedCert = source?.certificate;
  const src = source?.address?.socket_address;
  const dst = attrs.destination?.address?.socket_address;
  // One fixed-shape literal: conditional spreads cost microseconds each on this hot path.
  const input: AuthzInput = {
    principal: source?.principal || undefined,
    peerCertificate: encodedCert ? certificate(encodedCert) : source?.principal && certificate.required?.() ? CERTIFICATE_MISSING : undefined,
    sourceIp: src?.address || undefined,
    destinationIp: dst?.address || undefined,
    destinationPort: dst?.port_value || undefined,
    method,
    host: host || undefined,
    path,
    headers,
    sni: attrs.tls_session?.sni || undefined,
    metadata: filterMetadataOf(attrs.metadata_context?.filter_metadata),
  };
  return { ok: true, input, requestId: http.id || headers['x-request-id'] || undefined };
}

/** metadata_context.filter_metadata (protobuf Structs) as plain JSON, by filter name; undefined when empty. */
function filterMetadataOf(fm: Record<string, unknown> | null | undefined): AuthzInput['metadata'] {
  if (!fm) return undefined;
  let out: Record<string, Record<string, unknown>> | undefined;
  for (const name of Object.keys(fm)) {
    (out ??= Object.create(null) as Record<string, Record<string, unknown>>)[name] = structToJson(fm[name]);
  }
  return out;
}

function structToJson(s: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const fields = (s as { fields?: Record<string, unknown> } | null)?.fields;
  if (fields) for (const k of Object.keys(fields)) out[k] = valueToJson(fields[k]);
  return out;
}

/** google.protobuf.Value (camelCase fields, as protobufjs loads the well-known types) to JSON. */
function valueToJson(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return null;
  const value = v as { stringValue?: string; numberValue?: number; boolValue?: boolean; structValue?: unknown; listValue?: { values?: unknown[] } | null };
  if (value.stringValue !== undefined && value.stringValue !== null) return value.stringValue;
  if (value.numberValue !== undefined && value.numberValue !== null) return value.numberValue;
  if (value.boolValue !== undefined && value.boolValue !== null) return value.boolValue;
  if (value.structValue) return structToJson(value.structValue);
  if (value.listValue) return (value.listValue.values ?? []).map(valueToJson);
  return null;
}

const UPPER = /[A-Z]/;

/** The request headers with lower-case names; repeated headers joined with "," as Envoy does. */
function headersOf(http: AttributeContextHttpRequest): Readonly<Record<string, string>> {
  const plain = http.headers;
  const list = http.header_map?.headers;
  if (plain && (!list || list.length === 0)) {
    // Envoy already sends lower-case names: reuse its object unless one is not.
    for (const k in plain) if (UPPER.test(k)) return lowerCased(Object.entries(plain));
    return plain;
  }
  const entries: Array<[string, string]> = plain ? Object.entries(plain) : [];
  for (const h of list ?? []) {
    if (!h.key) continue;
    const raw = h.raw_value;
    const value = h.value || (raw ? (typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')) : '');
    entries.push([h.key, value]);
  }
  return lowerCased(entries);
}

function lowerCased(entries: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of entries) {
    const name = k.toLowerCase();
    out[name] = name in out ? `${out[name]},${v}` : v;
  }
  return out;
}

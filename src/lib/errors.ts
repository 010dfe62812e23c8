/**
 * meshid's one error type, and the registry of its stable codes. Each code says what went wrong,
 * what to do about it, the gRPC status a server answers with and the exit code a command ends
 * with: grpc-status.ts and the command router read both from here and nowhere else. The README's
 * table of codes is generated from this registry (`npm run docs:errors`) and checked by a test.
 * Pure: no gRPC import (statuses are named here, turned into numbers in grpc-status.ts).
 */

/** How a caller should treat the failure; names the gRPC status a handler answers with. */
export type ErrorKind =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'unimplemented'
  | 'internal';

export interface ErrorCodeInfo {
  readonly kind: ErrorKind;
  /** Exit code of a command that ends with this error: 2 for configuration and unreadable input, 1 otherwise. */
  readonly exit: 1 | 2;
  readonly meaning: string;
  readonly action: string;
}

const config = (meaning: string, action: string): ErrorCodeInfo => ({ kind: 'invalid_argument', exit: 2, meaning, action });
const input = (meaning: string, action = 'fix the file or request the message names'): ErrorCodeInfo => ({ kind: 'invalid_argument', exit: 2, meaning, action });
const fail = (kind: ErrorKind, meaning: string, action: string): ErrorCodeInfo => ({ kind, exit: 1, meaning, action });

const SPIFFE_ID_ACTION = 'write the ID as spiffe://<trust-domain>/<path>, lowercase trust domain, segments of letters, digits, ".", "-", "_"';
const CSR_ACTION = 'send one PEM PKCS#10 CSR signed by its own key (EC P-256/P-384 or RSA 2048-8192)';
const SVID_ACTION = 'check that the chain and the bundle belong together (the message names the certificate and the rule)';
const JWT_ACTION = "check the token file and the CA's --jwt-keys, --jwt-issuer and --jwt-audience";
const CA_ANSWER_ACTION = 'the CA answered with a certificate meshid cannot use: check the CA (its logs, its trust domain, its version)';
const SOCKET_ACTION = 'choose another socket path with the flag the message names, or fix the directory';

export const ERROR_CODES = {
  // Configuration (exit 2)
  config_invalid: config('a setting is missing, malformed, unknown, or conflicts with another', 'fix each key named, at the source named (flag, env MESHID_* or the config file)'),
  config_value_invalid: config('one setting\'s value cannot be parsed', 'give the value in the form the message shows'),
  usage: config('the command line has the wrong arguments', 'run the command with --help'),
  input_unreadable: input('a file named on the command line or by a setting cannot be read', 'check the path and its permissions'),
  static_tokens_invalid: config('the --static-tokens file is not "tokens: {<token>: <spiffe-id>}"', 'fix the entry the message names'),
  jwt_keys_invalid: config('the --jwt-keys file is neither a JWKS of asymmetric keys nor PEM public keys', 'export the public keys again (JWKS JSON or PEM)'),
  jwt_rules_invalid: config('the --jwt-rules file is not RequestAuthentication jwtRules meshid can use', 'fix the rule and field the message names'),
  rotation_option_invalid: config('a rotation setting (renew fraction, jitter, retry bounds) is out of range', 'set renew-fraction ± renew-jitter inside (0, 1)'),
  policy_dir_required: config('ext_authz is served but no policy directory is set', 'add --policy-dir, or drop --authz-socket/--authz-listen'),
  authz_no_listener: config('ext_authz was started with neither a socket nor a TCP address', 'set --authz-socket or --authz-listen'),
  ca_config_invalid: config('a CA setting cannot be used (a key or token file, a name)', 'fix the setting the message names'),
  verify_time_invalid: config('the verification time is not a usable time', 'pass --at as RFC 3339, e.g. 2025-01-31T12:00:00Z'),

  // Encoded input: PEM, DER, certificates, CSRs (exit 2 when a command reads them from a file)
  pem_empty: input('no PEM block where one was expected'),
  pem_wrong_label: input('a PEM block of another type (e.g. a key where a certificate belongs)'),
  pem_mismatched_label: input('a PEM block whose BEGIN and END labels differ'),
  pem_bad_base64: input('a PEM block whose body is not base64'),
  der_malformed: input('bytes that are not valid DER'),
  der_unexpected: input('valid DER of the wrong shape'),
  certificate_malformed: input('a certificate that cannot be parsed'),
  extension_malformed: input('a certificate or CSR extension that cannot be parsed'),
  extension_repeated: input('an extension that appears twice'),
  san_malformed: input('a subjectAltName that cannot be parsed'),
  san_empty: input('a subjectAltName extension without names'),
  san_invalid: input('a DNS name or IP address that is not valid', 'give a DNS name or an IP address'),
  san_unsupported: input('a subjectAltName type meshid does not handle'),
  ip_invalid: input('an IP address that cannot be parsed'),
  key_unsupported: input('a key type or size meshid does not use', 'use EC P-256/P-384 or RSA 2048-8192'),
  public_key_invalid: input('a public key that cannot be imported'),
  signature_algorithm_unsupported: input('a signature algorithm meshid does not verify'),
  signature_algorithm_mismatch: input('the signature algorithm inside and outside the signed part differ'),
  bundle_not_pem: input('the trust bundle is not PEM certificates'),
  bundle_not_certificate: input('a trust bundle PEM block that is not a certificate'),
  bundle_empty: input('the trust bundle holds no certificate'),
  bundle_root_not_ca: input('a trust bundle certificate is not a CA', 'put only CA certificates (roots) in the bundle'),
  // Exit 1: the bundle was read and is not one of this trust domain (meshid svid verify: invalid, not unreadable).
  bundle_root_trust_domain_mismatch: { kind: 'invalid_argument', exit: 1, meaning: 'a trust bundle root names another trust domain', action: 'use the bundle of this trust domain, or fix --trust-domain' },
  bundle_trust_domain_invalid: input('the trust domain given for a bundle is not valid', SPIFFE_ID_ACTION),
  check_request_invalid: input('a CheckRequest (protobuf JSON) that cannot be read', 'fix the field the message names'),

  // SPIFFE IDs
  spiffe_id_empty: input('the SPIFFE ID is empty', SPIFFE_ID_ACTION),
  spiffe_id_scheme: input('the SPIFFE ID does not start with spiffe://', SPIFFE_ID_ACTION),
  spiffe_id_too_long: input('the SPIFFE ID or its trust domain is too long', SPIFFE_ID_ACTION),
  spiffe_id_trust_domain_missing: input('the SPIFFE ID has no trust domain', SPIFFE_ID_ACTION),
  spiffe_id_trust_domain_chars: input('the trust domain has characters outside a-z 0-9 . - _', SPIFFE_ID_ACTION),
  spiffe_id_userinfo: input('the SPIFFE ID has user info (user@)', SPIFFE_ID_ACTION),
  spiffe_id_port: input('the SPIFFE ID has a port', SPIFFE_ID_ACTION),
  spiffe_id_query: input('the SPIFFE ID has a query (?)', SPIFFE_ID_ACTION),
  spiffe_id_fragment: input('the SPIFFE ID has a fragment (#)', SPIFFE_ID_ACTION),
  spiffe_id_percent_encoding: input('the SPIFFE ID is percent-encoded', SPIFFE_ID_ACTION),
  spiffe_id_path_chars: input('a path segment has characters outside letters, digits, . - _', SPIFFE_ID_ACTION),
  spiffe_id_empty_segment: input('the path has an empty segment (//)', SPIFFE_ID_ACTION),
  spiffe_id_dot_segment: input('the path has a . or .. segment', SPIFFE_ID_ACTION),
  spiffe_id_trailing_slash: input('the path ends with /', SPIFFE_ID_ACTION),

  // CSRs the CA refuses
  csr_not_pem: input('the request holds no PEM CSR', CSR_ACTION),
  csr_multiple: input('the request holds several CSRs', CSR_ACTION),
  csr_wrong_type: input('the PEM block is not a CERTIFICATE REQUEST', CSR_ACTION),
  csr_malformed: input('the CSR cannot be parsed', CSR_ACTION),
  csr_signature_invalid: input('the CSR\'s signature does not verify', CSR_ACTION),
  csr_key_unsupported: input('the CSR\'s key is of a type the CA does not sign', CSR_ACTION),
  csr_key_too_weak: input('the CSR\'s RSA key is under 2048 bits', CSR_ACTION),
  csr_key_too_large: input('the CSR\'s RSA key is over 8192 bits', CSR_ACTION),
  csr_multiple_uris: input('the CSR asks for several URI SANs', 'ask for one SPIFFE ID, or none'),
  csr_identity_no_path: fail('permission_denied', 'the caller\'s identity is the bare trust domain, which no leaf SVID may carry', 'map the credential to a workload SPIFFE ID with a path'),
  csr_identity_mismatch: fail('permission_denied', 'the CSR names another identity than the caller proved', 'leave the SAN out or ask for the caller\'s own SPIFFE ID'),
  csr_unprovable_sans: fail('permission_denied', 'the CSR asks for DNS, IP or email names the caller cannot prove', 'ask for the SPIFFE ID only'),
  csr_requests_ca: fail('permission_denied', 'the CSR asks for a CA certificate', 'ask for a leaf (no basicConstraints cA=true)'),
  ttl_invalid: input('the requested validity_duration is not a positive number of seconds', 'send a positive number, or 0 for the CA\'s default'),

  // Caller authentication at the CA
  no_credentials: fail('unauthenticated', 'the caller presented neither a client SVID nor a bearer token', 'send "authorization: Bearer <token>" or renew over mTLS'),
  token_too_large: fail('unauthenticated', 'the bearer token is over 64 KiB', 'present a normal-sized token (service-account JWTs are a few KiB)'),
  authorization_malformed: fail('unauthenticated', 'the authorization header is not "Bearer <token>"', 'send "authorization: Bearer <token>"'),
  peer_svid_invalid: fail('unauthenticated', 'the client certificate is not a valid SVID of this CA', 'authenticate with the token until a new SVID is issued'),
  token_unknown: fail('unauthenticated', 'the bearer token is neither a valid JWT nor a known static token', JWT_ACTION),
  jwt_not_configured: fail('unauthenticated', 'a JWT was presented but the CA has no --jwt-keys', 'configure --jwt-keys and --jwt-issuer on the CA'),
  jwt_malformed: fail('unauthenticated', 'the bearer token is not a well-formed JWT', JWT_ACTION),
  jwt_algorithm_refused: fail('unauthenticated', 'the JWT uses none, HS* or another refused algorithm', 'sign tokens with an asymmetric algorithm (RS256, ES256, ...)'),
  jwt_expired: fail('unauthenticated', 'the JWT has expired', 'refresh the projected token (the kubelet rotates it)'),
  jwt_not_yet_valid: fail('unauthenticated', 'the JWT is not valid yet (nbf)', 'check the clocks of the issuer and the CA'),
  jwt_wrong_issuer: fail('unauthenticated', 'the JWT\'s iss is not --jwt-issuer', JWT_ACTION),
  jwt_wrong_audience: fail('unauthenticated', 'the JWT\'s aud does not include --jwt-audience', 'project the token with the audience the CA expects (istio-ca)'),
  jwt_claim_invalid: fail('unauthenticated', 'a required JWT claim is missing or invalid', JWT_ACTION),
  jwt_signature_invalid: fail('unauthenticated', 'the JWT\'s signature does not verify with any configured key', 'give the CA the issuer\'s current keys'),
  jwt_no_matching_key: fail('unauthenticated', 'no configured key matches the JWT\'s key ID and algorithm', 'give the CA the issuer\'s current keys'),
  jwt_invalid: fail('unauthenticated', 'the JWT was refused for another reason', JWT_ACTION),
  jwt_claims_inconsistent: fail('unauthenticated', 'sub and the kubernetes.io claim name different service accounts', 'use a token issued by the Kubernetes API server'),
  jwt_no_service_account: fail('unauthenticated', 'the token names no Kubernetes service account', 'use a service-account token, or pass --spiffe-id'),
  jwt_identity_invalid: fail('unauthenticated', 'the service account in the token makes no valid SPIFFE ID', 'check the namespace and service-account names'),
  identity_foreign_trust_domain: fail('permission_denied', 'the caller\'s identity is in another trust domain than the CA\'s', 'send the request to the CA of that trust domain'),

  // The CA itself
  ca_state_invalid: fail('failed_precondition', 'the CA state directory is inconsistent (a key without its certificate, a key that does not match, another trust domain)', 'repair or move the state directory the message names'),
  ca_expired: fail('failed_precondition', 'the CA certificate has expired', 'rotate the CA: new root or intermediate in the state directory'),
  ca_not_yet_valid: fail('failed_precondition', 'the CA certificate is not valid yet', 'check the clock'),
  ca_chain_empty: fail('internal', 'the CA has no chain to issue under', 'report a bug'),
  ca_busy: fail('resource_exhausted', 'the CA is working on as many requests as --max-concurrent-issuance allows and shed this one', 'retry after the grpc-retry-pushback-ms trailer (the agent does); raise the limit or add CA replicas if it persists'),
  issuance_rate_limited: fail('resource_exhausted', 'this identity asked for more certificates than --issuance-burst and --issuance-rate allow', 'retry after the grpc-retry-pushback-ms trailer; find the workload that renews in a loop, or raise the limit for identities with many replicas'),

  // Partners and revocation (meshid ca partner issue|list, meshid ca revoke, meshid ca crl)
  partner_name_invalid: config('a partner name is not 1-63 lowercase letters, digits or "-", starting with a letter', 'choose a name like acme or acme-eu'),
  csr_subject_not_allowed: fail('permission_denied', 'the partner CSR asks for a subject (O, CN) the operator did not allow', 'pass --allow-subject, or ask for a CSR with an empty subject'),
  csr_subject_unsupported: fail('permission_denied', 'the partner CSR subject has attributes other than O and CN, or repeats one', 'ask for a CSR with only O and CN (e.g. -subj "/O=Acme/CN=acme-client")'),
  revocation_reason_invalid: config('the revocation reason is not an RFC 5280 reason name', 'use keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, ...'),
  serial_invalid: config('a serial number is not hex', 'give the serial as printed by meshid ca partner list or openssl x509 -serial'),
  revocation_target_unknown: fail('not_found', 'no certificate of that SPIFFE ID is recorded by this CA', 'revoke by --serial, or check the ID with meshid ca partner list'),
  audit_log_unwritable: fail('failed_precondition', 'the audit log cannot be appended to', 'fix the path or permissions of --audit-log'),
  state_locked: fail('unavailable', 'another meshid ca process holds the state directory\'s lock for too long', 'wait for the other command to finish; remove <state-dir>/state.lock if no meshid ca command runs'),
  partner_cas_invalid: config('the --partner-cas mapping file, or a partner CA bundle it names, cannot be used', 'fix the entry and field the message names; a running agent keeps the last good mapping'),
  crl_invalid: input('a CRL that cannot be parsed or does not verify', 'fetch the CRL again from the CA (meshid ca crl)'),
  listen_failed: fail('unavailable', 'a server cannot listen on its address (in use, not local, no permission)', 'free the port or choose another address with the flag the message names'),

  // Answers from the CA the agent refuses
  ca_response_malformed: fail('invalid_argument', 'the CA\'s answer cannot be parsed', CA_ANSWER_ACTION),
  ca_chain_too_short: fail('invalid_argument', 'the CA returned fewer than two certificates', CA_ANSWER_ACTION),
  ca_wrong_identity: fail('invalid_argument', 'the CA issued another identity than the one asked for', CA_ANSWER_ACTION),
  ca_wrong_key: fail('invalid_argument', 'the issued certificate does not carry the key sent in the CSR', CA_ANSWER_ACTION),
  ca_root_not_self_signed: fail('invalid_argument', 'the chain does not end with a self-signed root', CA_ANSWER_ACTION),
  ca_root_unusable: fail('invalid_argument', 'the chain\'s root cannot be used as a trust anchor', CA_ANSWER_ACTION),
  ca_chain_untrusted: fail('invalid_argument', 'the issued chain is not a valid X.509-SVID under the trust bundle', CA_ANSWER_ACTION),
  ca_root_not_configured: fail('failed_precondition', 'the issued chain ends at a root the configured trust bundle (--trust-bundle) does not list', 'add the CA\'s new root to the trust bundle file before the CA issues under it, or point the agent at the CA the bundle names'),
  svid_manager_stopped: fail('unavailable', 'the SVID manager was stopped while a request waited', 'none: the agent is shutting down'),

  // X.509-SVID verification (meshid svid verify exits 1: the input was read and is not a valid SVID)
  svid_empty_chain: fail('unauthenticated', 'the chain holds no certificate', SVID_ACTION),
  svid_no_roots: fail('unauthenticated', 'the trust bundle holds no root', SVID_ACTION),
  svid_untrusted: fail('unauthenticated', 'no path from the leaf to a root of the bundle', SVID_ACTION),
  svid_path_too_long: fail('unauthenticated', 'no path to a root within 8 certificates', SVID_ACTION),
  svid_bad_signature: fail('unauthenticated', 'a signature on the path does not verify', SVID_ACTION),
  svid_signature_algorithm_unsupported: fail('unauthenticated', 'a certificate is signed with an unsupported algorithm', SVID_ACTION),
  svid_signature_algorithm_mismatch: fail('unauthenticated', 'a certificate\'s two signature algorithm fields differ', SVID_ACTION),
  svid_expired: fail('unauthenticated', 'a certificate on the path has expired', 'renew it (or check the clock, or --at)'),
  svid_not_yet_valid: fail('unauthenticated', 'a certificate on the path is not valid yet', 'check the clock (or --at)'),
  svid_unknown_critical_extension: fail('unauthenticated', 'a certificate has a critical extension meshid does not process', SVID_ACTION),
  svid_issuer_not_v3: fail('unauthenticated', 'an issuer is not an X.509 v3 certificate', SVID_ACTION),
  svid_issuer_not_ca: fail('unauthenticated', 'an issuer is not a CA (basicConstraints)', SVID_ACTION),
  svid_issuer_key_usage_missing: fail('unauthenticated', 'an issuer has no keyUsage', SVID_ACTION),
  svid_issuer_key_cert_sign_missing: fail('unauthenticated', 'an issuer\'s keyUsage lacks keyCertSign', SVID_ACTION),
  svid_issuer_subject_empty: fail('unauthenticated', 'an issuer has an empty subject', SVID_ACTION),
  svid_path_length_exceeded: fail('unauthenticated', 'an issuer\'s pathLen constraint is exceeded', SVID_ACTION),
  svid_leaf_is_ca: fail('unauthenticated', 'the leaf is a CA certificate', SVID_ACTION),
  svid_leaf_key_usage_missing: fail('unauthenticated', 'the leaf has no keyUsage', SVID_ACTION),
  svid_leaf_digital_signature_missing: fail('unauthenticated', 'the leaf\'s keyUsage lacks digitalSignature', SVID_ACTION),
  svid_leaf_key_usage_forbidden: fail('unauthenticated', 'the leaf\'s keyUsage has keyCertSign or cRLSign', SVID_ACTION),
  svid_leaf_uri_san_missing: fail('unauthenticated', 'the leaf has no URI SAN', SVID_ACTION),
  svid_leaf_uri_san_multiple: fail('unauthenticated', 'the leaf has several URI SANs', SVID_ACTION),
  svid_leaf_uri_san_not_spiffe: fail('unauthenticated', 'the leaf\'s URI SAN is not a spiffe:// ID', SVID_ACTION),
  svid_leaf_spiffe_id_invalid: fail('unauthenticated', 'the leaf\'s SPIFFE ID is not valid', SVID_ACTION),
  svid_leaf_spiffe_id_no_path: fail('unauthenticated', 'the leaf\'s SPIFFE ID is the bare trust domain (no path)', SVID_ACTION),
  svid_leaf_san_not_critical: fail('unauthenticated', 'the leaf has an empty subject and a non-critical SAN', SVID_ACTION),
  svid_trust_domain_mismatch: fail('unauthenticated', 'the SVID is of another trust domain than the one expected', 'verify against that trust domain, or use the SVID of this one'),
  svid_ca_trust_domain_mismatch: fail('unauthenticated', 'a CA on the path carries a SPIFFE ID of another trust domain', SVID_ACTION),

  // SDS
  sds_wrong_type_url: input('the SDS request asks for another type than Secret', 'configure Envoy\'s SDS config source for secrets'),
  sds_resource_count: input('an SDS stream asks for more or fewer than one secret', 'one secret name per stream (Envoy does this without ADS)'),
  sds_unknown_secret: fail('not_found', 'the SDS secret name is not one the agent serves', 'ask for default, ROOTCA, spiffe://<td>, partners (with --partner-cas), file-cert:..., file-root:... or named:<a --named-cert name>'),
  sds_bad_file_cert_name: input('a file-cert: name is not file-cert:<cert>~<key>', 'name two absolute paths separated by ~'),
  sds_bad_file_root_name: input('a file-root: name has no path', 'name an absolute path'),
  sds_relative_file_path: input('a file-backed secret names a relative path', 'use an absolute path'),
  sds_file_refused: fail('permission_denied', 'a file-backed secret names a path outside --sds-file-dirs, or something other than a regular file within the size limit', 'serve regular files from a directory listed in --sds-file-dirs'),
  sds_file_missing: fail('not_found', 'a file-backed secret\'s file does not exist', 'create the file, or fix the name in Envoy\'s config'),
  sds_file_unreadable: fail('failed_precondition', 'a file-backed secret\'s file cannot be read', 'check its permissions'),
  sds_file_invalid: fail('failed_precondition', 'a file-backed secret\'s file is not usable PEM (or key and certificate do not match)', 'fix the file the message names'),
  sds_closing: fail('unavailable', 'the SDS server is shutting down', 'none: Envoy reconnects to the next agent'),
  sds_internal: fail('internal', 'an unexpected error in the SDS server', 'report a bug with the log line'),

  // Workload API
  workload_api_security_header: input('the Workload API call lacks the workload.spiffe.io: true header', 'use a SPIFFE Workload API client'),
  workload_api_closing: fail('unavailable', 'the Workload API server is shutting down', 'none: clients reconnect'),
  workload_api_internal: fail('internal', 'an unexpected error in the Workload API server', 'report a bug with the log line'),
  jwt_svid_missing: input('no JWT-SVID was given to validate', 'pass the token'),
  jwt_svid_invalid: input('the JWT-SVID does not validate', 'check the token, its audience and the JWT bundle'),
  jwt_svid_ttl: input('the requested JWT-SVID lifetime is not a whole number of seconds', 'send a non-negative whole number'),
  jwt_svid_unknown_trust_domain: input('no JWT bundle for the trust domain of the token\'s sub', 'validate tokens of a trust domain this agent knows'),
  jwt_svid_refused: input('the CA refused the JWT-SVID request', 'see the CA\'s reason in the message'),
  jwt_svid_ca_failed: fail('unavailable', 'the CA could not be reached for a JWT-SVID or its keys', 'check the CA; the call can be retried'),
  jwt_svid_unsupported_by_ca: fail('unavailable', 'the CA does not issue JWT-SVIDs', 'use a CA that does (meshid ca)'),
  jwt_svid_no_x509: fail('unavailable', 'no X.509-SVID yet to authenticate to the CA with', 'retry once the agent holds its first SVID'),
  jwt_bundle_invalid: fail('unavailable', 'the CA sent an unusable JWKS', 'check the CA'),
  jwt_svid_audience: input('the JWT-SVID audience is missing or wrong', 'ask for and check the same audience'),
  jwt_svid_no_audience: input('a JWT-SVID was asked for without an audience', 'name at least one audience'),
  jwt_svid_not_entitled: fail('permission_denied', 'the caller is not entitled to a JWT-SVID for that identity', 'ask for the caller\'s own identity'),
  jwt_svid_unsupported: fail('unavailable', 'JWT-SVIDs are not available from this agent', 'use X.509-SVIDs'),

  // Unix sockets (SDS, ext_authz, Workload API)
  socket_path_too_long: config('the socket path is longer than Unix sockets allow (107 bytes)', 'choose a shorter path with the flag the message names'),
  socket_dir: fail('failed_precondition', 'the socket\'s directory cannot be created or written', SOCKET_ACTION),
  socket_stat: fail('failed_precondition', 'the socket path cannot be inspected', SOCKET_ACTION),
  socket_not_a_socket: fail('failed_precondition', 'the socket path exists and is not a socket', 'remove the file, or choose another path with the flag the message names'),
  socket_in_use: fail('failed_precondition', 'another process serves on the socket', 'stop the other agent, or choose another path with the flag the message names'),
  socket_probe: fail('failed_precondition', 'an existing socket could not be checked', SOCKET_ACTION),
  socket_bind: fail('failed_precondition', 'the socket cannot be bound', SOCKET_ACTION),
  authz_bind_failed: fail('unavailable', 'ext_authz cannot listen on its TCP address', 'free the port or choose another --authz-listen'),

  bad_redis_url: config('the Redis URL is not redis://host:port, rediss://host:port or unix:///path', 'fix the URL the message names'),
  svid_dir_unusable: fail('failed_precondition', 'the --svid-dir directory cannot be created or written', 'fix its permissions or choose another --svid-dir'),
  dev_state_in_use: fail('failed_precondition', 'another meshid dev runs on the same state directory', 'stop it, or pass another --state-dir'),
  internal_error: fail('internal', 'an unexpected error', 'report a bug with the log line'),
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MeshidErrorOptions {
  readonly cause?: unknown;
  /** The configuration key the error is about, so the command can name where its value came from. */
  readonly key?: string;
  /** Several problems reported at once (configuration): each is one line of the message. */
  readonly problems?: readonly string[];
}

export class MeshidError extends Error {
  override readonly name = 'MeshidError';
  readonly key: string | undefined;
  readonly problems: readonly string[];

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: MeshidErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.key = options.key;
    this.problems = options.problems ?? [message];
  }

  get kind(): ErrorKind {
    return ERROR_CODES[this.code].kind;
  }

  get exitCode(): 1 | 2 {
    return ERROR_CODES[this.code].exit;
  }
}

export function isMeshidError(e: unknown): e is MeshidError {
  return e instanceof MeshidError;
}

/** The same error with context in front of its message. */
export function withContext(e: MeshidError, context: string): MeshidError {
  return new MeshidError(e.code, `${context}: ${e.message}`, { cause: e.cause, ...(e.key !== undefined ? { key: e.key } : {}) });
}

/** Configuration problems, each naming its key and source, reported together (exit 2). */
export function configError(problems: readonly string[]): MeshidError {
  const message = problems.length === 1 ? problems[0]! : `${problems.length} configuration problems:\n  ${problems.join('\n  ')}`;
  return new MeshidError('config_invalid', message, { problems });
}

/** A message for any thrown value, without a stack trace. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

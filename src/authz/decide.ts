/**
 * One CheckRequest to one decision, failing closed: no policy set, a malformed request or an
 * unexpected exception all give a deny with a reason, never an allow and never a throw. Shared by
 * the ext_authz server and `meshid authz check`.
 *
 * Request principals come from the bearer token when meshid verifies tokens itself (--jwt-rules:
 * a present token that does not verify is refused 401 jwt_invalid, as Envoy's jwt_authn does;
 * a missing one leaves the request without a request principal), otherwise from the payload
 * Envoy's jwt_authn filter put in metadata_context. A token bound to a certificate (RFC 8705
 * cnf["x5t#S256"]) must match the peer certificate, else 401 token_not_bound.
 */
import type { CheckRequest } from '../envoy/protos.js';
import { type CertificateCheck, inputFromCheckRequest } from './check-request.js';
import type { CompiledPolicySet } from './compile.js';
import { type Decision, denyDecision, evaluate } from './engine.js';
import type { AuthzInput, RequestAuth } from './facts.js';
import { checkTokenBinding, type TokenBinding } from './jwt-binding.js';
import { requestAuthFromMetadata } from './jwt-metadata.js';
import type { RequestAuthenticator } from './jwt-verify.js';
import { errorMessage } from '../lib/errors.js';

export interface CheckOutcome {
  readonly decision: Decision;
  /** The engine input, when the request could be read. */
  readonly input?: AuthzInput | undefined;
  readonly requestId?: string | undefined;
  /** Where the request principal came from, when it has one or presented a token. */
  readonly token?: TokenResult;
}

export type TokenSource = 'bearer' | 'jwt_authn';

export interface TokenResult {
  readonly source: TokenSource;
  readonly status: 'valid' | 'invalid' | 'not_bound';
  /** The request principal ("<iss>/<sub>") of a token that verified. */
  readonly principal?: string;
  /** Why the token was refused. */
  readonly problem?: string;
  /** The RFC 8705 comparison, for tokens that verified. */
  readonly binding?: TokenBinding;
  /** iss and sub of a refused token (unverified when status is invalid); a valid token's are in its claims. */
  readonly issuer?: string;
  readonly subject?: string;
}

export interface RequestAuthOptions {
  /** Verifies bearer tokens (--jwt-rules); absent: only Envoy's jwt_authn metadata gives request principals. */
  readonly authenticator?: RequestAuthenticator | undefined;
  /** The jwt_authn metadata key (payload_in_metadata); undefined: the first entry holding a payload. */
  readonly metadataKey?: string | undefined;
}

type Read = { readonly done: CheckOutcome } | { readonly input: AuthzInput; readonly requestId: string | undefined };

function read(set: CompiledPolicySet | undefined, req: CheckRequest | null | undefined, certificate: CertificateCheck): Read {
  if (!set) return { done: { decision: denyDecision('no_valid_policy_set', '', 'no valid policy set is loaded') } };
  const r = inputFromCheckRequest(req, certificate);
  if (!r.ok) return { done: { decision: denyDecision('malformed_request', set.revision, r.reason) } };
  return { input: r.input, requestId: r.requestId };
}

function failed(set: CompiledPolicySet | undefined, e: unknown): CheckOutcome {
  return { decision: denyDecision('internal_error', set?.revision ?? '', errorMessage(e)) };
}

/** Decides with request principals from jwt_authn metadata only (synchronous). */
export function decideCheckRequest(set: CompiledPolicySet | undefined, req: CheckRequest | null | undefined, certificate: CertificateCheck, auth: RequestAuthOptions = {}): CheckOutcome {
  try {
    const r = read(set, req, certificate);
    if ('done' in r) return r.done;
    const fromEnvoy = r.input.metadata ? requestAuthFromMetadata(r.input.metadata, auth.metadataKey) : undefined;
    return finish(set!, r.input, r.requestId, fromEnvoy, 'jwt_authn', req);
  } catch (e) {
    return failed(set, e);
  }
}

/**
 * Decides, verifying the request's bearer token with auth.authenticator first when it carries one
 * (asynchronous only then).
 */
export function decideCheckRequestWithTokens(
  set: CompiledPolicySet | undefined,
  req: CheckRequest | null | undefined,
  certificate: CertificateCheck,
  auth: RequestAuthOptions,
): CheckOutcome | Promise<CheckOutcome> {
  const authenticator = auth.authenticator;
  if (!authenticator) return decideCheckRequest(set, req, certificate, auth);
  try {
    const r = read(set, req, certificate);
    if ('done' in r) return r.done;
    const token = authenticator.tokenOf(r.input.headers ?? {}, r.input.path);
    if (token === undefined) {
      const fromEnvoy = r.input.metadata ? requestAuthFromMetadata(r.input.metadata, auth.metadataKey) : undefined;
      return finish(set!, r.input, r.requestId, fromEnvoy, 'jwt_authn', req);
    }
    return authenticator.verify(token).then(
      (v) => {
        if (v.status === 'valid') return finish(set!, r.input, r.requestId, v.auth, 'bearer', req);
        const reason = v.status === 'invalid' ? v.reason : 'no token';
        return {
          decision: denyDecision('jwt_invalid', set!.revision, `the bearer token is not valid: ${reason}`),
          input: r.input,
          requestId: r.requestId,
          token: {
            source: 'bearer',
            status: 'invalid',
            problem: reason,
            ...(v.status === 'invalid' && v.issuer !== undefined ? { issuer: v.issuer } : {}),
            ...(v.status === 'invalid' && v.subject !== undefined ? { subject: v.subject } : {}),
          },
        } satisfies CheckOutcome as CheckOutcome;
      },
      (e: unknown) => failed(set, e),
    );
  } catch (e) {
    return failed(set, e);
  }
}

/** The binding check, then the engine. */
function finish(set: CompiledPolicySet, input: AuthzInput, requestId: string | undefined, auth: RequestAuth | undefined, source: TokenSource, req: CheckRequest | null | undefined): CheckOutcome {
  if (!auth) return { decision: evaluate(set, input), input, requestId };
  const binding = checkTokenBinding(auth.claims, req?.attributes?.source?.certificate || undefined);
  if (binding.problem !== undefined) {
    return {
      decision: denyDecision('token_not_bound', set.revision, binding.problem),
      input,
      requestId,
      token: { source, status: 'not_bound', principal: auth.principal, problem: binding.problem, binding, ...claimStrings(auth.claims) },
    };
  }
  const withAuth: AuthzInput = { ...input, requestAuth: binding.bound ? { ...auth, certificateBound: true } : auth };
  return { decision: evaluate(set, withAuth), input: withAuth, requestId, token: { source, status: 'valid', principal: auth.principal, binding } };
}

function claimStrings(claims: Readonly<Record<string, unknown>>): { issuer?: string; subject?: string } {
  return { ...(typeof claims.iss === 'string' ? { issuer: claims.iss } : {}), ...(typeof claims.sub === 'string' ? { subject: claims.sub } : {}) };
}

/**
 * Kubernetes service-account identity, as Istio maps it: a token whose claims name
 * system:serviceaccount:<ns>:<sa> (in "sub" and/or the "kubernetes.io" claim) stands for
 * spiffe://<trust-domain>/ns/<ns>/sa/<sa>. Used by the CA on verified tokens, and by the agent to
 * know which identity to ask for before the CA has verified anything.
 */
import { errorMessage, type ErrorCode, MeshidError } from '../lib/errors.js';
import { type SpiffeId, workloadSpiffeId } from './spiffe-id.js';

function refuse(code: ErrorCode, detail: string): MeshidError {
  return new MeshidError(code, detail);
}

/** The workload identity the claims stand for; throws (unauthenticated) when they name none or disagree. */
export function spiffeIdFromServiceAccountClaims(claims: Record<string, unknown>, trustDomain: string): SpiffeId {
  const fromSub = typeof claims.sub === 'string' ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(claims.sub) : null;
  const k8s = claims['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown } } | undefined;
  const fromClaim =
    typeof k8s?.namespace === 'string' && typeof k8s.serviceaccount?.name === 'string' ? [k8s.namespace, k8s.serviceaccount.name] : undefined;
  if (fromSub && fromClaim && (fromSub[1] !== fromClaim[0] || fromSub[2] !== fromClaim[1])) {
    throw refuse('jwt_claims_inconsistent', `sub ${JSON.stringify(claims.sub)} and the kubernetes.io claim name different service accounts`);
  }
  const [ns, sa] = fromClaim ?? (fromSub ? [fromSub[1]!, fromSub[2]!] : []);
  if (ns === undefined || sa === undefined) {
    throw refuse('jwt_no_service_account', 'the token names no Kubernetes service account (sub system:serviceaccount:<ns>:<sa> or the kubernetes.io claim)');
  }
  try {
    return workloadSpiffeId(trustDomain, ns, sa);
  } catch (e) {
    throw refuse('jwt_identity_invalid', errorMessage(e));
  }
}

/**
 * The claims of a JWT, read WITHOUT verifying its signature: only for deciding what to ask the CA
 * for, which verifies the token itself. Undefined when the text is not a JWT.
 */
export function unverifiedJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

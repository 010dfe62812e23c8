/**
 * One CheckRequest to one decision, failing closed: no policy set, a malformed request or an
 * unexpected exception all give a deny with a reason, never an allow and never a throw. Shared by
 * the ext_authz server and `meshid authz check`. Pure.
 */
import type { CheckRequest } from '../envoy/protos.js';
import { type CertificateCheck, inputFromCheckRequest } from './check-request.js';
import type { CompiledPolicySet } from './compile.js';
import { type Decision, denyDecision, evaluate } from './engine.js';
import type { AuthzInput } from './facts.js';
import { errorMessage } from '../lib/errors.js';

export interface CheckOutcome {
  readonly decision: Decision;
  /** The engine input, when the request could be read. */
  readonly input?: AuthzInput | undefined;
  readonly requestId?: string | undefined;
}

export function decideCheckRequest(set: CompiledPolicySet | undefined, req: CheckRequest | null | undefined, certificate: CertificateCheck): CheckOutcome {
  try {
    if (!set) return { decision: denyDecision('no_valid_policy_set', '', 'no valid policy set is loaded') };
    const read = inputFromCheckRequest(req, certificate);
    if (!read.ok) return { decision: denyDecision('malformed_request', set.revision, read.reason) };
    return { decision: evaluate(set, read.input), input: read.input, requestId: read.requestId };
  } catch (e) {
    return { decision: denyDecision('internal_error', set?.revision ?? '', errorMessage(e)) };
  }
}

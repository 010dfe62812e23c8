/**
 * Errors with a stable machine-readable code and a kind. The kind says how the caller should treat
 * the failure and maps to a gRPC status only at a handler edge (see grpc-status.ts); the code
 * names the precise problem for logs, metrics and tests.
 */
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

export class MeshidError extends Error {
  override readonly name = 'MeshidError';

  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isMeshidError(e: unknown): e is MeshidError {
  return e instanceof MeshidError;
}

/** A message for any thrown value, without a stack trace. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

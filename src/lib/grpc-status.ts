import { status } from '@grpc/grpc-js';
import type { ErrorKind } from './errors.js';

const toStatus: Record<ErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  not_found: status.NOT_FOUND,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  unimplemented: status.UNIMPLEMENTED,
  internal: status.INTERNAL,
};

export function grpcStatusOf(kind: ErrorKind): status {
  return toStatus[kind];
}

export function errorKindOf(code: status): ErrorKind {
  for (const [kind, s] of Object.entries(toStatus)) if (s === code) return kind as ErrorKind;
  return code === status.CANCELLED ? 'unavailable' : 'internal';
}

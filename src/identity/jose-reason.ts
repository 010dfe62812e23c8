/** Why jose refused a JWT, in words, without the token: shared by request tokens and JWT-SVIDs. */
import { errors } from 'jose';
import { errorMessage } from '../lib/errors.js';

/** `token` names the JWT in the sentence ("the token", "it"); `keys` where its keys come from. */
export function joseReason(e: unknown, token: string, keys: string): string {
  if (e instanceof errors.JWTExpired) return `${token} has expired`;
  if (e instanceof errors.JWTClaimValidationFailed) return `claim "${e.claim}" check failed (${e.reason})`;
  if (e instanceof errors.JWSSignatureVerificationFailed) return 'its signature does not verify';
  if (e instanceof errors.JWKSNoMatchingKey) return `no key of ${keys} matches its "kid"`;
  if (e instanceof errors.JOSEAlgNotAllowed) return 'its "alg" is not allowed (asymmetric algorithms only)';
  if (e instanceof errors.JWKSTimeout) return `${keys} could not be fetched in time`;
  return errorMessage(e);
}

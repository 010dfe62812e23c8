/** A verified JWT payload as Istio's request.auth.* attributes. Pure. */
import type { RequestAuth } from './facts.js';

/** principal "<iss>/<sub>", audiences (aud as a list), presenter (azp), every claim; undefined without iss and sub. */
export function requestAuthOfPayload(payload: Readonly<Record<string, unknown>>): RequestAuth | undefined {
  const { iss, sub, aud, azp } = payload;
  if (typeof iss !== 'string' || typeof sub !== 'string') return undefined;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
  return { principal: `${iss}/${sub}`, audiences, ...(typeof azp === 'string' ? { presenter: azp } : {}), claims: payload };
}

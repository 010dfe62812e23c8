/** Policy files for the rate-limit tests: partners allowed in, and their quotas. */
export const PARTNER_A = 'spiffe://example.org/ns/partners/sa/partner-a';
export const PARTNER_B = 'spiffe://example.org/ns/partners/sa/partner-b';

/** ALLOW for every workload in the partners namespace. */
export const ALLOW_PARTNERS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-partners, namespace: gateway }
spec:
  rules:
    - from: [{ source: { namespaces: ["partners"] } }]
`;

/** A RateLimitPolicy gateway/partners with these limits (YAML list items, indented 4). */
export function rateLimitPolicy(limits: string): string {
  return `apiVersion: meshid.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: partners, namespace: gateway }
spec:
  limits:
${limits}`;
}

/** One limit, gateway/partners/partner-a, for PARTNER_A. */
export function partnerALimit(requests: number, per = 'minute', burst?: number): string {
  return rateLimitPolicy(`    - name: partner-a
      match: { from: [{ source: { principals: ["example.org/ns/partners/sa/partner-a"] } }] }
      rate: { requests: ${requests}, per: ${per}${burst !== undefined ? `, burst: ${burst}` : ''} }
`);
}

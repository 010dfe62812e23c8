/** The reference CA's settings, declared once for `meshid ca`, `meshid dev` and startCa(). */
import { DEFAULT_CA_LISTEN, DEFAULT_TOKEN_AUDIENCE, DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, formatDuration, opt, parseHostPort } from '../config/options.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { DEFAULT_CRL_VALIDITY_MS } from './crl-publisher.js';
import { DEFAULT_JWT_SVID_TTL_MS } from './jwt-svid.js';

export const DEFAULT_CA_TTL_MS = 3_600_000;
export const DEFAULT_CA_MAX_TTL_MS = 24 * 3_600_000;

export const caOptions = {
  listen: opt.hostPort('listen', { description: 'address the CA serves gRPC over TLS on (port 0: any free port)', default: parseHostPort(DEFAULT_CA_LISTEN) }),
  trustDomain: opt.checked('trust-domain', { description: 'the trust domain this CA issues identities in', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
  stateDir: opt.string('state-dir', {
    description: 'directory of the CA key and certificate (created 0700 on first start, reused after) and bundle.pem',
    metavar: 'DIR',
    default: '.meshid/ca',
  }),
  ttl: opt.duration('ttl', { description: 'lifetime of issued certificates when the request names none', default: DEFAULT_CA_TTL_MS, min: 60_000 }),
  maxTtl: opt.duration('max-ttl', { description: 'longest lifetime issued; longer requests are clamped to it', default: DEFAULT_CA_MAX_TTL_MS, min: 60_000 }),
  jwtKeys: opt.string('jwt-keys', { description: 'JWKS (JSON) or PEM public keys that verify bearer JWTs (service-account tokens)', metavar: 'FILE' }),
  jwtIssuer: opt.string('jwt-issuer', { description: 'required "iss" of bearer JWTs (required with --jwt-keys)', metavar: 'ISSUER' }),
  jwtAudience: opt.string('jwt-audience', { description: 'required "aud" of bearer JWTs', metavar: 'AUDIENCE', default: DEFAULT_TOKEN_AUDIENCE }),
  staticTokens: opt.string('static-tokens', {
    description: 'DEVELOPMENT ONLY: YAML file "tokens: {<token>: <spiffe-id>}" of opaque bearer tokens',
    metavar: 'FILE',
  }),
  jwtSvidTtl: opt.duration('jwt-svid-ttl', { description: 'lifetime of JWT-SVIDs (the longest issued; agents may ask for less)', default: DEFAULT_JWT_SVID_TTL_MS, min: 30_000, max: 3_600_000 }),
  issuanceRate: opt.number('issuance-rate', {
    description: 'certificates per minute one SPIFFE ID may obtain, sustained, after its burst (0: no per-identity limit); size it for the replicas sharing a service account',
    metavar: 'N',
    default: 300,
    min: 0,
  }),
  issuanceBurst: opt.number('issuance-burst', { description: 'certificates one SPIFFE ID may obtain back to back before --issuance-rate applies', metavar: 'N', default: 100, min: 1 }),
  maxConcurrentIssuance: opt.number('max-concurrent-issuance', {
    description: 'CreateCertificate calls worked on at once; beyond it calls are shed with RESOURCE_EXHAUSTED and a retry hint (0: no limit)',
    metavar: 'N',
    default: 256,
    min: 0,
  }),
  shedRetry: opt.duration('shed-retry', { description: 'retry hint (grpc-retry-pushback-ms) sent with a call shed by --max-concurrent-issuance', default: 2000, min: 1, max: 600_000 }),
  crlValidity: opt.duration('crl-validity', {
    description: 'thisUpdate to nextUpdate of the CRLs signed; a running meshid ca re-signs half-way, otherwise re-run meshid ca crl before it passes',
    default: DEFAULT_CRL_VALIDITY_MS,
    min: 60_000,
    max: 30 * 86_400_000,
  }),
  auditLog: opt.string('audit-log', { description: 'file the audit lines are appended to and fsynced (default <state-dir>/audit.log)', metavar: 'FILE' }),
  san: opt.list('san', { description: 'extra DNS name or IP address for the CA serving certificate (besides localhost, 127.0.0.1, ::1)', metavar: 'NAME', default: [] as readonly string[] }),
};

export type CaConfig = ConfigOf<typeof caOptions>;

/** Combinations startCa() cannot serve, and settings that do nothing in the combination given. */
export const caRules: readonly ConfigRule[] = [
  rule<CaConfig>({
    keys: ['ttl', 'maxTtl'],
    check: (c) => (c.ttl > c.maxTtl ? `the default lifetime ${formatDuration(c.ttl)} is longer than the longest one issued, ${formatDuration(c.maxTtl)}` : undefined),
  }),
  rule<CaConfig>({
    keys: ['jwtIssuer', 'jwtKeys'],
    check: (c) => (c.jwtIssuer !== undefined && c.jwtKeys === undefined ? 'jwt-issuer is set but jwt-keys is not: the CA needs keys to verify tokens' : undefined),
  }),
  rule<CaConfig>({
    keys: ['jwtKeys', 'jwtIssuer'],
    check: (c) => (c.jwtKeys !== undefined && c.jwtIssuer === undefined ? 'jwt-keys needs jwt-issuer: tokens from any issuer would otherwise be accepted' : undefined),
  }),
  rule<CaConfig>({
    keys: ['jwtAudience'],
    warning: true,
    check: (c, given) => (given('jwtAudience') && c.jwtKeys === undefined ? 'has no effect without jwt-keys (no JWTs are verified)' : undefined),
  }),
];

/**
 * The agent's ext_authz settings, declared once: flags, YAML keys, MESHID_* variables, defaults
 * and help all come from these specs. `meshid agent` spreads them into its options.
 */
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt } from '../config/options.js';
import { REDIS_FALLBACKS, redisTarget } from './rate-limit/redis-url.js';
import { ESCAPED_SLASHES } from './paths.js';
import { CREDENTIAL_HEADERS } from './decision-log.js';

export const authzOptionSpecs = {
  authzSocket: opt.string('authz-socket', {
    description: 'serve Envoy ext_authz (envoy.service.auth.v3.Authorization) on this Unix socket',
    metavar: 'PATH',
  }),
  authzSocketMode: opt.fileMode('authz-socket-mode', {
    description: "file mode of the ext_authz socket, octal (0660 lets the socket's group, e.g. Envoy's, connect)",
    default: 0o600,
  }),
  authzListen: opt.hostPort('authz-listen', {
    description: 'serve ext_authz on this TCP address too (plaintext gRPC: keep it on loopback)',
  }),
  policyDir: opt.string('policy-dir', {
    description: 'directory of Istio AuthorizationPolicy YAML files, watched for changes',
    metavar: 'DIR',
  }),
  authzDecisionLogSample: opt.number('authz-decision-log-sample', {
    description: 'fraction of decisions written to the decision log, 0 (off) to 1 (all); decisions a dry-run policy would change are always logged',
    metavar: 'RATE',
    default: 1,
    min: 0,
    max: 1,
  }),
  authzDecisionLogHeaders: opt.list('authz-decision-log-headers', {
    description: 'request headers whose values the decision log writes as sent (e.g. x-tenant,user-agent); every other header value is logged as an HMAC (hmac-sha256:...); credential headers (authorization, cookie, ...) cannot be named',
    metavar: 'NAME',
  }),
  authzDenyDetails: opt.bool('authz-deny-details', {
    description: 'name the reason, policy and rule in the body of 403 responses (false: "access denied" only)',
    default: true,
  }),
  policyReloadDebounce: opt.duration('policy-reload-debounce', {
    description: 'quiet period after a policy file changes before the directory is reloaded',
    default: 200,
    min: 0,
    max: 60_000,
  }),
  policyResync: opt.duration('policy-resync', {
    description: 'also re-read the policy directory this often, in case a file event was missed (0: only on events)',
    default: 30_000,
    min: 0,
  }),
  rateLimitRedis: opt.checked(
    'rate-limit-redis',
    {
      description: 'keep RateLimitPolicy counters in this Redis (redis://HOST:PORT[/DB], rediss://..., unix:///PATH), shared by every agent using it; default: in memory, per agent',
      metavar: 'URL',
      secret: true,
    },
    (s) => {
      redisTarget(s);
      return s;
    },
  ),
  rateLimitRedisTimeout: opt.duration('rate-limit-redis-timeout', {
    description: "how long a decision waits for Redis before the fallback decides (keep it well inside Envoy's ext_authz timeout)",
    default: 50,
    min: 1,
    max: 10_000,
  }),
  rateLimitRedisFallback: opt.oneOf('rate-limit-redis-fallback', REDIS_FALLBACKS, {
    description: "when Redis cannot answer: local (each agent enforces the limit on its own counters), open (allow), closed (answer 503)",
    default: 'local',
  }),
  rateLimitMaxKeys: opt.number('rate-limit-max-keys', {
    description: 'most rate-limit counters kept in memory; the least recently used are forgotten beyond it (counted in meshid_authz_rate_limit_evictions_total)',
    default: 100_000,
    min: 1,
  }),
  authzEscapedSlashes: opt.oneOf('authz-escaped-slashes', ESCAPED_SLASHES, {
    description: 'paths with %2F, %5C or a backslash: reject (deny, as Envoy REJECT_REQUEST), unescape (decode, then normalise, as UNESCAPE_AND_FORWARD) or keep (match them encoded, as KEEP_UNCHANGED)',
    default: 'reject',
  }),
  jwtRules: opt.string('jwt-rules', {
    description: 'verify bearer tokens for request principals: a file of Istio RequestAuthentication jwtRules (issuer, audiences, jwks/jwksUri/jwksFile, fromHeaders, fromParams); a present token that does not verify is answered 401',
    metavar: 'FILE',
  }),
  jwtAuthnMetadataKey: opt.string('jwt-authn-metadata-key', {
    description: "the key under metadata_context envoy.filters.http.jwt_authn that holds the verified payload (Envoy's payload_in_metadata; Istio uses the issuer); default: the first entry that is a JWT payload",
    metavar: 'KEY',
  }),
  authzTrustDomainAliases: opt.list('authz-trust-domain-aliases', {
    description: 'trust domains that policies naming this workload\'s trust domain (or cluster.local) also cover, as Istio\'s trustDomainAliases',
    metavar: 'TD',
  }),
};

export type AuthzOptions = ConfigOf<typeof authzOptionSpecs>;

type AuthzKey = keyof AuthzOptions & string;
const SERVICE_SETTINGS: readonly AuthzKey[] = ['policyDir', 'authzSocketMode', 'authzDecisionLogSample', 'authzDecisionLogHeaders', 'authzDenyDetails', 'policyReloadDebounce', 'policyResync', 'authzEscapedSlashes', 'authzTrustDomainAliases', 'jwtRules', 'jwtAuthnMetadataKey'];

const serving = (c: AuthzOptions) => c.authzSocket !== undefined || c.authzListen !== undefined;

/** ext_authz needs a policy directory; its other settings do nothing while it is off. */
export const authzRules: readonly ConfigRule[] = [
  rule<AuthzOptions>({
    keys: ['authzSocket', 'authzListen', 'policyDir'],
    check: (c) => (serving(c) && c.policyDir === undefined ? 'ext_authz needs policy-dir, the directory of AuthorizationPolicy files it decides by' : undefined),
  }),
  rule<AuthzOptions>({
    keys: ['authzDecisionLogHeaders'],
    check: (c) => {
      const named = (c.authzDecisionLogHeaders ?? []).filter((h) => CREDENTIAL_HEADERS.includes(h.toLowerCase()));
      return named.length > 0 ? `names ${named.join(', ')}: credential headers are never logged as sent` : undefined;
    },
  }),
  ...SERVICE_SETTINGS.map((key) => rule<AuthzOptions>({
    keys: [key],
    warning: true,
    check: (c, given) => (given(key) && !serving(c) ? 'has no effect without authz-socket or authz-listen (ext_authz is off)' : undefined),
  })),
];

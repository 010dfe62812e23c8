/** The agent's rotation settings (see src/config/options.ts for how specs become flags). */
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt } from '../config/options.js';
import { KEY_ALGORITHMS } from '../identity/keys.js';
import { DEFAULT_CRL_WAIT_MS } from './crl-watcher.js';
import { renewalWindowProblem } from './policy.js';

export const rotationOptions = {
  keyAlgorithm: opt.oneOf('key-algorithm', KEY_ALGORITHMS, { description: 'algorithm of the workload key generated in memory', default: 'ec-p256' }),
  svidTtl: opt.duration('svid-ttl', { description: "lifetime to ask the CA for (default: the CA's default)", min: 10_000 }),
  renewFraction: opt.number('renew-fraction', { description: 'renew at this fraction of the SVID lifetime', default: 0.5, min: 0.1, max: 0.9 }),
  renewJitter: opt.number('renew-jitter', { description: 'random spread of the renewal point, as a fraction of the lifetime (±)', default: 0.1, min: 0, max: 0.4 }),
};

/** Where the agent gets the CA's CRL (served over SDS with the bundle, and consulted by ext_authz). */
export const crlOptions = {
  crlSource: opt.oneOf('crl-source', ['ca', 'file', 'off'] as const, {
    description: "where the CRL comes from: ca (long-poll meshid ca's RevocationService/FetchCRL), file (--crl-file, watched), off",
    default: 'ca',
  }),
  crlFile: opt.string('crl-file', { description: 'PEM or DER CRL file, watched (with --crl-source file), e.g. the CA\'s <state-dir>/crl.pem', metavar: 'FILE' }),
  crlWait: opt.duration('crl-wait', {
    description: 'how long the CA may hold one FetchCRL waiting for a newer CRL (the long poll); a new CRL is answered at once, an idle agent costs one call per this long',
    default: DEFAULT_CRL_WAIT_MS,
    min: 1000,
    max: 60_000,
  }),
};

type CrlConfig = ConfigOf<typeof crlOptions>;

export const crlRules: readonly ConfigRule[] = [
  rule<CrlConfig>({ keys: ['crlFile', 'crlSource'], check: (c) => (c.crlSource === 'file' && c.crlFile === undefined ? 'crl-source file needs crl-file' : undefined) }),
  rule<CrlConfig>({ keys: ['crlFile', 'crlSource'], check: (c) => (c.crlSource !== 'file' && c.crlFile !== undefined ? `crl-file is only read with crl-source file (crl-source is ${c.crlSource})` : undefined) }),
  rule<CrlConfig>({ keys: ['crlWait'], warning: true, check: (c, given) => (given('crlWait') && c.crlSource !== 'ca' ? 'has no effect unless crl-source is ca' : undefined) }),
];

export const rotationRules: readonly ConfigRule[] = [
  // The same check the SVID manager makes, made here so that it fails before anything starts.
  rule<ConfigOf<typeof rotationOptions>>({ keys: ['renewFraction', 'renewJitter'], check: (c) => renewalWindowProblem(c.renewFraction, c.renewJitter) }),
];

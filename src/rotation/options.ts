/** The agent's rotation settings (see src/config/options.ts for how specs become flags). */
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt } from '../config/options.js';
import { KEY_ALGORITHMS } from '../identity/keys.js';
import { renewalWindowProblem } from './policy.js';

export const rotationOptions = {
  keyAlgorithm: opt.oneOf('key-algorithm', KEY_ALGORITHMS, { description: 'algorithm of the workload key generated in memory', default: 'ec-p256' }),
  svidTtl: opt.duration('svid-ttl', { description: "lifetime to ask the CA for (default: the CA's default)", min: 10_000 }),
  renewFraction: opt.number('renew-fraction', { description: 'renew at this fraction of the SVID lifetime', default: 0.5, min: 0.1, max: 0.9 }),
  renewJitter: opt.number('renew-jitter', { description: 'random spread of the renewal point, as a fraction of the lifetime (±)', default: 0.1, min: 0, max: 0.4 }),
};

export const rotationRules: readonly ConfigRule[] = [
  // The same check the SVID manager makes, made here so that it fails before anything starts.
  rule<ConfigOf<typeof rotationOptions>>({ keys: ['renewFraction', 'renewJitter'], check: (c) => renewalWindowProblem(c.renewFraction, c.renewJitter) }),
];

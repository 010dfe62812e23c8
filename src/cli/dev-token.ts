/**
 * `meshid dev token --sa NS/SA`: a test service-account JWT that `meshid ca --jwt-keys
 * <state-dir>/token-issuer/jwks.json --jwt-issuer meshid-dev` accepts for
 * spiffe://<td>/ns/NS/sa/SA. The token alone goes to stdout, so `$(meshid dev token ...)` or
 * `> orders.token` is the whole recipe; anything else goes to stderr.
 */
import { opt } from '../config/options.js';
import { DEV_ISSUER, DEV_SA_AUDIENCE, DevTokenIssuer, parseServiceAccount } from '../demo/dev-issuer.js';
import { systemClock } from '../lib/clock.js';
import { defineCommand } from './command.js';

const DAY_MS = 86_400_000;

export default defineCommand({
  name: 'dev token',
  summary: 'mint a development service-account JWT that a CA started with the dev issuer key accepts',
  fileAndEnv: false,
  details: `
Signs with the dev issuer key in <state-dir>/token-issuer/key.pem (ES256; created 0600 on first
use, reused after) and writes its public JWKS to <state-dir>/token-issuer/jwks.json. The token
looks like a projected Kubernetes service-account token: sub system:serviceaccount:NS:SA, the
kubernetes.io claim, iss meshid-dev, aud istio-ca. A CA accepts it when started with
  meshid ca --jwt-keys <state-dir>/token-issuer/jwks.json --jwt-issuer meshid-dev
(and --jwt-audience if --aud is not istio-ca). Only the token is printed, on stdout.
Development only: whoever reads the key can mint any service account.`,
  options: {
    sa: opt.checked('sa', { description: 'the service account, NAMESPACE/NAME (the CA issues spiffe://<td>/ns/NAMESPACE/sa/NAME)', metavar: 'NS/SA', required: true }, parseServiceAccount),
    aud: opt.list('aud', { description: 'audiences of the token (the CA requires its --jwt-audience among them)', metavar: 'AUDIENCE', default: [DEV_SA_AUDIENCE] as readonly string[] }),
    ttl: opt.duration('ttl', { description: 'lifetime of the token', default: 3_600_000, min: 60_000, max: 30 * DAY_MS }),
    issuer: opt.string('issuer', { description: 'the token\'s "iss" (the CA\'s --jwt-issuer)', metavar: 'ISSUER', default: DEV_ISSUER }),
    stateDir: opt.string('state-dir', { description: 'directory holding token-issuer/key.pem and token-issuer/jwks.json', metavar: 'DIR', default: '.meshid' }),
  },
  async run({ config }, io) {
    const issuer = await DevTokenIssuer.open(config.stateDir, config.issuer);
    if (issuer.created) {
      io.stderr.write(`meshid dev token: created the dev issuer key ${issuer.files.key}; a CA accepts its tokens with --jwt-keys ${issuer.files.jwks} --jwt-issuer ${issuer.issuer}\n`);
    }
    const token = await issuer.serviceAccountToken(config.sa, config.aud, config.ttl, systemClock.now());
    io.stdout.write(`${token}\n`);
    return 0;
  },
});

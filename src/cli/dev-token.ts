/**
 * Development tokens from the dev issuer (src/demo/dev-issuer.ts):
 * - `meshid dev token --sa NS/SA`: a service-account JWT that `meshid ca --jwt-keys
 *   <state-dir>/token-issuer/jwks.json --jwt-issuer meshid-dev` accepts for
 *   spiffe://<td>/ns/NS/sa/SA;
 * - `meshid dev token --bind-cert CERT.pem`: an access token for the certificate's SPIFFE ID,
 *   bound to it (RFC 8705 cnf.x5t#S256), minted offline;
 * (`meshid dev token-server`, dev-token-server.ts, hands out such bound tokens over mTLS.)
 * The token alone goes to stdout, so `$(meshid dev token ...)` or `> orders.token` is the whole
 * recipe; anything else goes to stderr.
 */
import fs from 'node:fs';
import { rule } from '../config/load.js';
import { type ConfigOf, opt } from '../config/options.js';
import { DEV_ISSUER, DEV_SA_AUDIENCE, DevTokenIssuer, parseServiceAccount } from '../demo/dev-issuer.js';
import { DEFAULT_ACCESS_TTL_MS, DEV_ACCESS_AUDIENCE } from '../demo/token-endpoint.js';
import { parseCertificatesPem } from '../identity/certificate.js';
import { parseSpiffeId, type SpiffeId } from '../identity/spiffe-id.js';
import { systemClock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { defineCommand } from './command.js';

export const DAY_MS = 86_400_000;

export const issuerOptions = {
  issuer: opt.string('issuer', { description: 'the tokens\' "iss" (the CA\'s --jwt-issuer, the jwtRules issuer)', metavar: 'ISSUER', default: DEV_ISSUER }),
  stateDir: opt.string('state-dir', { description: 'directory holding token-issuer/ (key.pem, jwks.json, jwt-rules.yaml, endpoint.pem)', metavar: 'DIR', default: '.meshid' }),
};

const tokenOptions = {
  sa: opt.checked('sa', { description: 'a service-account token for NAMESPACE/NAME (the CA issues spiffe://<td>/ns/NAMESPACE/sa/NAME)', metavar: 'NS/SA' }, parseServiceAccount),
  bindCert: opt.string('bind-cert', { description: "an access token for this certificate's SPIFFE ID, bound to it (RFC 8705 cnf.x5t#S256)", metavar: 'CERT.pem' }),
  aud: opt.list('aud', { description: `audiences of the token (default ${DEV_SA_AUDIENCE} with --sa, the CA's --jwt-audience; ${DEV_ACCESS_AUDIENCE} with --bind-cert)`, metavar: 'AUDIENCE', default: [] as readonly string[] }),
  ttl: opt.duration('ttl', { description: 'lifetime of the token (default 1h with --sa, 10m with --bind-cert)', min: 60_000, max: 30 * DAY_MS }),
  ...issuerOptions,
};

type TokenConfig = ConfigOf<typeof tokenOptions>;

export const devToken = defineCommand({
  name: 'dev token',
  summary: 'mint a development JWT: a service-account token for the CA (--sa), or a certificate-bound access token (--bind-cert)',
  fileAndEnv: false,
  details: `
Signs with the dev issuer key in <state-dir>/token-issuer/key.pem (ES256; created 0600 on first
use, reused after) and writes its public JWKS to <state-dir>/token-issuer/jwks.json.
--sa NS/SA: a token shaped like a projected Kubernetes service-account token (sub
system:serviceaccount:NS:SA, the kubernetes.io claim, iss meshid-dev, aud istio-ca). A CA
accepts it when started with
  meshid ca --jwt-keys <state-dir>/token-issuer/jwks.json --jwt-issuer meshid-dev
(and --jwt-audience if --aud is not istio-ca).
--bind-cert CERT.pem: an access token for the SPIFFE ID in the certificate (sub and client_id),
with cnf.x5t#S256 = base64url(SHA-256(DER)) of it, as the dev token endpoint issues; an agent
verifies it with --jwt-rules <state-dir>/token-issuer/jwt-rules.yaml (written by token-server).
Only the token is printed, on stdout. Development only: whoever reads the key can mint anything.`,
  options: tokenOptions,
  rules: [
    rule<TokenConfig>({
      keys: ['sa', 'bindCert'],
      check: (c) =>
        c.sa === undefined && c.bindCert === undefined
          ? 'give --sa NS/SA (a service-account token) or --bind-cert CERT.pem (a certificate-bound access token)'
          : c.sa !== undefined && c.bindCert !== undefined
            ? '--sa and --bind-cert make different tokens: give one'
            : undefined,
    }),
  ],
  async run({ config }, io) {
    const issuer = await DevTokenIssuer.open(config.stateDir, config.issuer);
    if (issuer.created) {
      io.stderr.write(`meshid dev token: created the dev issuer key ${issuer.files.key}; a CA accepts its service-account tokens with --jwt-keys ${issuer.files.jwks} --jwt-issuer ${issuer.issuer}\n`);
    }
    const now = systemClock.now();
    let token: string;
    if (config.sa) {
      token = await issuer.serviceAccountToken(config.sa, config.aud.length > 0 ? config.aud : [DEV_SA_AUDIENCE], config.ttl ?? 3_600_000, now);
    } else {
      const { der, id } = boundCertificate(config.bindCert!);
      token = await issuer.accessToken(id.uri, config.aud.length > 0 ? config.aud : [DEV_ACCESS_AUDIENCE], config.ttl ?? DEFAULT_ACCESS_TTL_MS, now, der);
    }
    io.stdout.write(`${token}\n`);
    return 0;
  },
});

/** The leaf of a PEM file and its one SPIFFE ID (URI SAN). */
function boundCertificate(file: string): { der: Buffer; id: SpiffeId } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MeshidError('input_unreadable', `cannot read --bind-cert ${file}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
  }
  const leaf = parseCertificatesPem(text, `--bind-cert ${file}`)[0]!;
  const uris = leaf.sans.flatMap((n) => (n.type === 'uri' ? [n.value] : []));
  if (uris.length !== 1) throw new MeshidError('input_unreadable', `--bind-cert ${file}: the certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one SPIFFE ID`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (e) {
    throw new MeshidError('input_unreadable', `--bind-cert ${file}: ${errorMessage(e)}`);
  }
  return { der: leaf.der, id };
}

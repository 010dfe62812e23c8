/**
 * `meshid dev token-server`: the development token endpoint (src/demo/token-endpoint.ts) as a
 * process: mTLS client authentication with an X.509-SVID (RFC 8705 tls_client_auth), answered
 * with a JWT bound to that certificate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { opt, parseHostPort } from '../config/options.js';
import { DevTokenIssuer } from '../demo/dev-issuer.js';
import { DEFAULT_ACCESS_TTL_MS, DEV_ACCESS_AUDIENCE, startTokenEndpoint } from '../demo/token-endpoint.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { systemClock } from '../lib/clock.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import { createLogger, logLevelOption } from '../observability/logger.js';
import { untilShutdown } from './agent.js';
import { defineCommand } from './command.js';
import { DAY_MS, issuerOptions } from './dev-token.js';

const serverOptions = {
  bundle: opt.string('bundle', { description: 'the mesh trust bundle (PEM) client certificates must chain to, e.g. .meshid/ca/bundle.pem', metavar: 'FILE', required: true }),
  trustDomain: opt.checked('trust-domain', { description: 'trust domain of the client SVIDs', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
  listen: opt.hostPort('listen', { description: 'address of the HTTPS token endpoint (port 0: any free port)', default: parseHostPort('127.0.0.1:0') }),
  aud: opt.list('aud', { description: 'audiences of the access tokens (the jwtRules audiences)', metavar: 'AUDIENCE', default: [DEV_ACCESS_AUDIENCE] as readonly string[] }),
  ttl: opt.duration('ttl', { description: 'lifetime of the access tokens', default: DEFAULT_ACCESS_TTL_MS, min: 60_000, max: DAY_MS }),
  ...issuerOptions,
  ...logLevelOption,
};

export default defineCommand({
  name: 'dev token-server',
  summary: 'run the development token endpoint: mTLS client auth (RFC 8705 tls_client_auth), certificate-bound JWTs',
  details: `
Serves POST /token (grant_type=client_credentials, form-encoded) over HTTPS to callers that
present an X.509-SVID chaining to --bundle: the answer is {"access_token", "token_type": "Bearer",
"expires_in"}, a JWT with sub and client_id the caller's SPIFFE ID and cnf.x5t#S256 the SHA-256
thumbprint of its certificate. GET /jwks serves the issuer's JWKS. Writes, under
<state-dir>/token-issuer/: jwks.json, jwt-rules.yaml (for meshid agent --jwt-rules) and
endpoint.pem (the endpoint's self-signed serving certificate: curl --cacert). Development only.`,
  options: serverOptions,
  async run({ config }) {
    const logger = createLogger({ level: config.logLevel });
    const log = logger.child({ component: 'dev' });
    let bundlePem: string;
    try {
      bundlePem = fs.readFileSync(config.bundle, 'utf8');
    } catch (e) {
      throw new MeshidError('input_unreadable', `cannot read --bundle ${config.bundle}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
    }
    const issuer = await DevTokenIssuer.open(config.stateDir, config.issuer);
    const jwtRules = issuer.writeJwtRules(config.aud);
    const endpoint = await startTokenEndpoint({
      issuer,
      bundlePem,
      trustDomain: config.trustDomain,
      listen: config.listen,
      audiences: config.aud,
      ttlMs: config.ttl,
      servingCertificateFile: issuer.files.endpointCertificate,
      clock: systemClock,
      logger,
    });
    log.info(
      { event: 'token_endpoint_ready', url: endpoint.url, tokenUrl: `${endpoint.url}/token`, jwks: issuer.files.jwks, jwtRules, servingCertificate: issuer.files.endpointCertificate, pid: process.pid },
      `dev token endpoint at ${endpoint.url}/token (mTLS with an SVID of ${config.trustDomain}); trust its certificate ${path.relative('.', issuer.files.endpointCertificate)}; ` +
        `agents verify its tokens with --jwt-rules ${path.relative('.', jwtRules)}`,
    );
    const signal = await untilShutdown(log);
    log.info({ event: 'signal', signal }, `${signal}: shutting down`);
    await endpoint.close();
    return 0;
  },
});

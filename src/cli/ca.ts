/** `meshid ca`: the reference CA, until SIGINT/SIGTERM. */
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { caOptions, caRules } from '../ca/options.js';
import { startCa } from '../ca/server.js';
import { createLogger, logLevelOption } from '../observability/logger.js';
import { defineCommand } from './command.js';

export default defineCommand({
  name: 'ca',
  summary: 'run the reference CA: istio.v1.auth.IstioCertificateService over TLS, issuing X.509-SVIDs',
  details: `
Callers authenticate by, in this order: mTLS with a still-valid SVID this CA issued (renewal); an
"authorization: Bearer <JWT>" service-account token verified against --jwt-keys, --jwt-issuer and
--jwt-audience; a --static-tokens entry (development only). The certificate always carries the
authenticated identity. Requests for a lifetime above --max-ttl are clamped to it.`,
  options: {
    ...caOptions,
    ...logLevelOption,
  },
  rules: caRules,
  async run({ config }) {
    const { logLevel, ...caConfig } = config;
    const logger = createLogger({ level: logLevel });
    // grpc-js writes its own errors to stderr; ours already say what failed, so keep its lines at debug.
    grpc.setLogger({ error: (...args: unknown[]) => logger.debug({ component: 'grpc' }, format(...args)) });
    // Startup failures propagate to the router: one line on stderr, exit 1.
    const ca = await startCa(caConfig, { logger });
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    logger.info({ event: 'signal', signal }, `${signal}: shutting down`);
    await ca.close();
    return 0;
  },
});

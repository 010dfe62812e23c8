/** The SDS flags `meshid agent` declares (see src/config/options.ts for how specs become flags). */
import { DEFAULT_SDS_SOCKET } from '../config/defaults.js';
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt, type OptionSpec, valueError } from '../config/options.js';
import { errorMessage } from '../lib/errors.js';
import { formatNamedCertSpec, type NamedCertSpec, parseNamedCertSpec } from './named-certs.js';

/**
 * "NAME=CERT,KEY"; in the environment several, comma-separated like every list ("a=/c,/k,b=/d,/e":
 * each entry is two comma-separated parts); in the file a list of such strings or of {name, cert, key}.
 */
function parseNamedCerts(raw: unknown): readonly NamedCertSpec[] {
  const items = Array.isArray(raw) ? raw : [raw];
  const specs: NamedCertSpec[] = [];
  for (const item of items) {
    try {
      if (item && typeof item === 'object' && !Array.isArray(item)) {
        const { name, cert, key, ...rest } = item as Record<string, unknown>;
        const extra = Object.keys(rest);
        if (extra.length > 0) throw new Error(`unknown key ${JSON.stringify(extra[0])} (expected name, cert, key)`);
        if (typeof name !== 'string' || typeof cert !== 'string' || typeof key !== 'string') throw new Error('expected {name, cert, key} strings');
        specs.push(parseNamedCertSpec(`${name}=${cert},${key}`));
      } else if (typeof item === 'string') {
        const parts = item.split(',');
        if (parts.length % 2 !== 0) throw new Error(`expected NAME=CERT_PATH,KEY_PATH, got ${JSON.stringify(item)}`);
        for (let i = 0; i < parts.length; i += 2) specs.push(parseNamedCertSpec(`${parts[i]},${parts[i + 1]}`));
      } else {
        throw new Error(`expected NAME=CERT_PATH,KEY_PATH, got ${JSON.stringify(item)}`);
      }
    } catch (e) {
      throw valueError(errorMessage(e));
    }
  }
  return Object.freeze(specs);
}

const namedCert: OptionSpec<readonly NamedCertSpec[]> & { default: readonly NamedCertSpec[] } = {
  flag: 'named-cert',
  description:
    'a certificate chain and key the agent serves besides its SVID, as NAME=CERT_PATH,KEY_PATH (absolute; watched, re-read on change, the last good pair kept on a bad edit): over SDS as named:NAME, in --svid-dir as NAME.pem and NAME.key',
  metavar: 'NAME=CERT,KEY',
  repeatable: true,
  default: Object.freeze([]),
  parse: parseNamedCerts,
  format: (v) => v.map(formatNamedCertSpec),
};

export const sdsOptions = {
  sdsSocket: opt.string('sds-socket', {
    description: 'Unix socket on which Envoy reaches the SDS server (created with its parent directory; a stale socket is replaced)',
    metavar: 'PATH',
    default: DEFAULT_SDS_SOCKET,
  }),
  sdsSocketMode: opt.fileMode('sds-socket-mode', {
    description: "file mode of the SDS socket, octal (0660 lets the socket's group, e.g. Envoy's, connect)",
    default: 0o600,
  }),
  sdsFileDirs: opt.list('sds-file-dirs', {
    description: 'directories whose regular files file-cert:/file-root: SDS secrets may name (comma-separated, absolute); default none: file-backed secrets are refused',
    metavar: 'DIRS',
    default: [],
  }),
  namedCert,
};

export const sdsRules: readonly ConfigRule[] = [
  rule<ConfigOf<typeof sdsOptions>>({
    keys: ['namedCert'],
    check: (c) => {
      const seen = new Set<string>();
      const twice = c.namedCert.find((s) => seen.size === seen.add(s.name).size);
      return twice ? `the name ${JSON.stringify(twice.name)} is given twice` : undefined;
    },
  }),
];

/** The SDS flags `meshid agent` declares (see src/config/options.ts for how specs become flags). */
import { DEFAULT_SDS_SOCKET } from '../config/defaults.js';
import { ConfigValueError, opt } from '../config/options.js';

/** Parses a Unix file mode written in octal: "0600", "600" or "0o600". */
export function parseFileMode(s: string): number {
  const m = /^(?:0o|0)?([0-7]{3})$/.exec(s.trim());
  if (!m) throw new ConfigValueError(`expected an octal file mode like 0600 or 0660, got ${JSON.stringify(s)}`);
  const mode = parseInt(m[1]!, 8);
  // The agent must be able to keep using its own socket; a mode without owner read+write is a typo.
  if ((mode & 0o600) !== 0o600) throw new ConfigValueError(`mode ${formatFileMode(mode)} must give the owner read and write (0600 at least)`);
  return mode;
}

export function formatFileMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

export const sdsOptions = {
  sdsSocket: opt.string('sds-socket', {
    description: 'Unix socket on which Envoy reaches the SDS server (created with its parent directory; a stale socket is replaced)',
    metavar: 'PATH',
    default: DEFAULT_SDS_SOCKET,
  }),
  sdsSocketMode: {
    ...opt.checked('sds-socket-mode', {
      description: 'file mode of the SDS socket, octal (0660 lets the socket\'s group, e.g. Envoy\'s, connect)',
      metavar: 'MODE',
      default: 0o600,
    }, parseFileMode),
    format: formatFileMode,
  },
};

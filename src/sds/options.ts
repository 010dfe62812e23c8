/** The SDS flags `meshid agent` declares (see src/config/options.ts for how specs become flags). */
import { DEFAULT_SDS_SOCKET } from '../config/defaults.js';
import { opt } from '../config/options.js';

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
};

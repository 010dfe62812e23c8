/** The flags of `meshid agent` for workloads without Envoy: the SPIFFE Workload API and the file sink. */
import os from 'node:os';
import { type ConfigRule, rule } from '../config/load.js';
import { type ConfigOf, opt, valueError } from '../config/options.js';

export const workloadApiOptions = {
  workloadApiSocket: opt.string('workload-api-socket', {
    description: 'serve the SPIFFE Workload API (SpiffeWorkloadAPI: X.509- and JWT-SVIDs, bundles) on this Unix socket',
    metavar: 'PATH',
  }),
  workloadApiSocketMode: opt.fileMode('workload-api-socket-mode', {
    description: "file mode of the Workload API socket, octal (0660 lets the socket's group connect)",
    default: 0o600,
  }),
};

export const fileSinkOptions = {
  svidDir: opt.string('svid-dir', {
    description: 'also write svid.pem, svid.key (0600) and bundle.pem to this directory on every rotation (atomically)',
    metavar: 'DIR',
  }),
  svidHook: opt.string('svid-hook', { description: 'shell command run after the files in --svid-dir are written (MESHID_SVID_DIR set)', metavar: 'CMD' }),
  svidSignal: opt.checked('svid-signal', { description: 'signal sent to the process in --svid-pid-file after the files are written, e.g. SIGHUP', metavar: 'SIG' }, parseSignal),
  svidPidFile: opt.string('svid-pid-file', { description: 'file holding the pid of the workload that --svid-signal goes to (read at every rotation)', metavar: 'FILE' }),
};

function parseSignal(s: string): NodeJS.Signals {
  const name = (s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`) as NodeJS.Signals;
  if (!(name in os.constants.signals) || name === 'SIGKILL' || name === 'SIGSTOP') throw valueError(`expected a signal name such as SIGHUP or SIGUSR1, got ${JSON.stringify(s)}`);
  return name;
}

type FileSinkOptions = ConfigOf<typeof fileSinkOptions>;

/** Settings that only make sense together; checked with the rest of the configuration, before anything binds. */
export const fileSinkRules: readonly ConfigRule[] = [
  rule<FileSinkOptions>({
    keys: ['svidDir', 'svidHook', 'svidSignal', 'svidPidFile'],
    check: (c) => (!c.svidDir && (c.svidHook || c.svidSignal || c.svidPidFile) ? '--svid-hook, --svid-signal and --svid-pid-file need --svid-dir' : undefined),
  }),
  rule<FileSinkOptions>({
    keys: ['svidSignal', 'svidPidFile'],
    check: (c) => (Boolean(c.svidSignal) !== Boolean(c.svidPidFile) ? '--svid-signal and --svid-pid-file go together' : undefined),
  }),
];

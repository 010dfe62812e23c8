/** The flags of `meshid agent` for workloads without Envoy: the SPIFFE Workload API and the file sink. */
import { opt } from '../config/options.js';

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

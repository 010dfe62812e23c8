/** Finds the command named on the command line, runs it, and turns every failure into a message and an exit code. */
import fs from 'node:fs';
import { closest } from '../lib/edit-distance.js';
import { errorMessage, isMeshidError } from '../lib/errors.js';
import { packagePath } from '../lib/package-path.js';
import { startupMark } from '../lib/startup-timing.js';
import { type Command, type CommandIO, invoke } from './command.js';

startupMark('cli_loaded');

type Loader = () => Promise<Command>;

// Commands load lazily so that a one-shot tool does not pay for gRPC and proto loading.
const COMMANDS: Record<string, { summary: string; load: Loader }> = {
  dev: { summary: 'run the reference CA and an agent together on embedded defaults', load: async () => (await import('./dev.js')).default },
  'dev token': { summary: 'mint a development JWT: a service-account token for the CA, or a certificate-bound access token', load: async () => (await import('./dev-token.js')).devToken },
  'dev token-server': { summary: 'the development token endpoint: mTLS client auth, certificate-bound JWTs (RFC 8705)', load: async () => (await import('./dev-token-server.js')).default },
  agent: { summary: 'the per-pod agent: SVIDs from the CA, served to Envoy over SDS, and ext_authz', load: async () => (await import('./agent.js')).default },
  ca: { summary: 'the reference CA (istio.v1.auth.IstioCertificateService over TLS)', load: async () => (await import('./ca.js')).default },
  'ca partner issue': { summary: "sign a partner's CSR into a client certificate (offline, on the CA state)", load: async () => (await import('./ca-partners.js')).partnerIssue },
  'ca partner list': { summary: 'list partner certificates: serial, name, SPIFFE ID, not-after, revoked', load: async () => (await import('./ca-partners.js')).partnerList },
  'ca revoke': { summary: 'revoke a certificate by serial or SPIFFE ID and publish a new CRL', load: async () => (await import('./ca-partners.js')).revoke },
  'ca crl': { summary: 'sign a fresh CRL of every revocation into the CA state', load: async () => (await import('./ca-partners.js')).crl },
  'svid verify': { summary: 'verify an X.509-SVID chain against a trust bundle', load: async () => (await import('./svid-verify.js')).default },
  'authz check': { summary: 'decide one Envoy CheckRequest (JSON) against a policy directory', load: async () => (await import('./authz-check.js')).default },
  'authz ask': { summary: 'send one Check to a running agent and print its decision', load: async () => (await import('./authz-ask.js')).default },
  'authz replay': { summary: 'decide recorded decision-log lines again under a candidate policy directory: what would change', load: async () => (await import('./authz-replay.js')).default },
  'sds fetch': { summary: "subscribe to an agent's SDS server as Envoy would; print (and write) the certificates it serves", load: async () => (await import('./sds-fetch.js')).default },
  'policy lint': { summary: 'validate a directory of AuthorizationPolicy YAML files', load: async () => (await import('./policy-lint.js')).default },
};

export function topLevelHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  return [
    'meshid: SPIFFE workload identity and authorization for Envoy',
    '',
    'Usage: meshid <command> [flags]',
    '',
    'Commands:',
    ...rows,
    '',
    'Run "meshid <command> --help" for the flags of a command; "meshid --version" for the version.',
    '',
  ].join('\n');
}

export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    io.stdout.write(topLevelHelp());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === 'version') {
    io.stdout.write(`meshid ${packageVersion()}\n`);
    return 0;
  }
  const twoWord = second !== undefined ? `${first} ${second}` : '';
  const threeWord = argv[2] !== undefined ? `${twoWord} ${argv[2]}` : '';
  const name = COMMANDS[threeWord] ? threeWord : COMMANDS[twoWord] ? twoWord : COMMANDS[first] ? first : undefined;
  if (!name) {
    const group = Object.keys(COMMANDS).filter((n) => n.startsWith(`${first} `));
    const subcommands = group.map((g) => g.split(' ')[1]!);
    const words = [...new Set(Object.keys(COMMANDS).map((n) => n.split(' ')[0]!))];
    const hint = (near: string | undefined) => (near ? ` (did you mean "meshid ${near}"?)` : '');
    io.stderr.write(
      group.length > 0
        ? `meshid ${first}: expected one of: ${subcommands.join(', ')}${second === undefined ? '' : hint(closest(second, subcommands)?.replace(/^/, `${first} `))}\n`
        : `meshid: unknown command "${first}"${hint(closest(first, words))}\n\n${topLevelHelp()}`,
    );
    return 2;
  }
  // "meshid ca partner" (or a mistyped third word) names a group of three-word commands, not "meshid ca partner".
  const subgroup = name !== threeWord && twoWord ? Object.keys(COMMANDS).filter((n) => n.startsWith(`${twoWord} `)) : [];
  if (subgroup.length > 0) {
    const words = subgroup.map((g) => g.split(' ')[2]!);
    const near = argv[2] === undefined ? undefined : closest(argv[2], words);
    io.stderr.write(`meshid ${twoWord}: expected one of: ${words.join(', ')}${near ? ` (did you mean "meshid ${twoWord} ${near}"?)` : ''}\n`);
    return 2;
  }
  const rest = argv.slice(name.split(' ').length);
  try {
    const command = await COMMANDS[name]!.load();
    startupMark('command_loaded');
    return await invoke(command, rest, io);
  } catch (e) {
    // The exit code comes from the error code's registry entry: 2 for configuration and unreadable input, 1 otherwise.
    const exit = isMeshidError(e) ? e.exitCode : 1;
    io.stderr.write(`meshid ${name}: ${errorMessage(e)}\n${exit === 2 ? `Run "meshid ${name} --help" for usage.\n` : ''}`);
    if (io.env.MESHID_DEBUG) io.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    return exit;
  }
}

/** The version in the package.json shipped with meshid. */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
}

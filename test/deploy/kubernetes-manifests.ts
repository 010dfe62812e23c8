/**
 * The Kubernetes manifests in deploy/, read as kubectl would read them (multi-document YAML plus
 * the kustomization's generated ConfigMaps), and the checks of everything meshid depends on in
 * them. Each check returns its problems (empty: fine) over a DeploySet, so a test can mutate a
 * copy of the set and see the check fail.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import caCommand from '../../src/cli/ca.js';
import { type AgentConfig, agentOptions } from '../../src/cli/agent.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../../src/config/defaults.js';
import { loadConfig } from '../../src/config/load.js';
import { isMeshidError } from '../../src/lib/errors.js';
import type { ConfigOf, OptionSpecs } from '../../src/config/options.js';

// ---- the parts of the Kubernetes API these checks read ----

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}
export type PortRef = number | string;
export interface Probe {
  httpGet?: { path?: string; port: PortRef };
  tcpSocket?: { port: PortRef };
}
export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: SecurityContext;
  volumeMounts?: VolumeMount[];
}
export interface Volume {
  name: string;
  emptyDir?: { medium?: string };
  configMap?: { name: string };
  secret?: { secretName: string };
  persistentVolumeClaim?: { claimName: string };
  projected?: { sources: Array<{ serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number } }> };
}
export interface PodSpec {
  securityContext?: SecurityContext;
  containers: Container[];
  volumes?: Volume[];
}
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}
export interface Deployment extends K8sObject {
  kind: 'Deployment';
  spec: { template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } };
}
export interface Service extends K8sObject {
  kind: 'Service';
  spec: { selector?: Record<string, string>; ports: Array<{ name?: string; port: number; targetPort?: PortRef }> };
}
export interface Kustomization {
  resources?: string[];
  configMapGenerator?: Array<{ name: string; namespace?: string; files?: string[] }>;
}

/** What deploy/ holds, as plain data a test may clone and mutate. Paths are relative to deploy/. */
export interface DeploySet {
  kustomization: Kustomization;
  /** Every object of deploy/kubernetes/*.yaml, in file order. */
  objects: K8sObject[];
  /** Every file under deploy/ with its text (the kustomization's inputs among them). */
  files: Map<string, string>;
  /** The version in package.json, which image tags follow. */
  version: string;
}

export function loadDeploySet(deployDir = 'deploy'): DeploySet {
  const files = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(deployDir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else files.set(r, fs.readFileSync(path.join(deployDir, r), 'utf8'));
    }
  };
  walk('');
  const objects: K8sObject[] = [];
  for (const [rel, text] of [...files].filter(([f]) => /^kubernetes\/[^/]+\.yaml$/.test(f)).sort(([a], [b]) => a.localeCompare(b))) {
    for (const doc of YAML.parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${rel}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) objects.push(obj);
    }
  }
  const kustomization = YAML.parse(files.get('kustomization.yaml') ?? '') as Kustomization;
  const version = (JSON.parse(fs.readFileSync(path.join(deployDir, '..', 'package.json'), 'utf8')) as { version: string }).version;
  return { kustomization, objects, files, version };
}

// ---- finding things ----

const deployments = (set: DeploySet) => set.objects.filter((o): o is Deployment => o.kind === 'Deployment');

/** The container that runs `meshid <command>`, with its Deployment. */
export function findMeshid(set: DeploySet, command: 'agent' | 'ca'): { deployment: Deployment; pod: PodSpec; container: Container } {
  for (const deployment of deployments(set)) {
    const pod = deployment.spec.template.spec;
    const container = pod.containers.find((c) => c.args?.[0] === command);
    if (container) return { deployment, pod, container };
  }
  throw new Error(`no Deployment has a container running "meshid ${command}"`);
}

function findEnvoy(pod: PodSpec): Container {
  const envoy = pod.containers.find((c) => {
    const image = c.image.split('@')[0]!.replace(/:[^/:]*$/, '');
    return image === 'envoy' || image.endsWith('/envoy');
  });
  if (!envoy) throw new Error('the agent pod has no Envoy container');
  return envoy;
}

function namespaceOf(o: K8sObject): string {
  return o.metadata.namespace ?? 'default';
}

export type CaCommandConfig = ConfigOf<typeof caCommand.options>;

/** The container's args after the command word, parsed as that command parses them. */
function parseArgs<S extends OptionSpecs>(container: Container, specs: S, command: string): ConfigOf<S> {
  try {
    return loadConfig(specs, { argv: (container.args ?? []).slice(1), fileAndEnv: false }).config;
  } catch (e) {
    if (isMeshidError(e) && e.code === 'config_invalid') throw new Error(`container ${container.name} (meshid ${command}): ${e.message}`);
    throw e;
  }
}

export const agentConfig = (set: DeploySet): AgentConfig => parseArgs(findMeshid(set, 'agent').container, agentOptions, 'agent');
export const caConfig = (set: DeploySet): CaCommandConfig => parseArgs(findMeshid(set, 'ca').container, caCommand.options, 'ca');

export interface Located {
  readonly volume: Volume;
  readonly mount: VolumeMount;
  /** The path inside the volume. */
  readonly rel: string;
}

/** Which volume (and where in it) a path inside a container lands on; undefined: the root filesystem. */
export function locate(pod: PodSpec, container: Container, file: string): Located | undefined {
  const target = path.posix.normalize(file);
  let best: VolumeMount | undefined;
  for (const m of container.volumeMounts ?? []) {
    const mp = path.posix.normalize(m.mountPath).replace(/\/$/, '');
    if ((target === mp || target.startsWith(`${mp}/`)) && (!best || mp.length > best.mountPath.replace(/\/$/, '').length)) best = m;
  }
  if (!best) return undefined;
  const volume = pod.volumes?.find((v) => v.name === best.name);
  if (!volume) return undefined;
  const rest = path.posix.relative(path.posix.normalize(best.mountPath), target);
  return { volume, mount: best, rel: [best.subPath, rest].filter((p) => p).join('/') };
}

function resolvePort(container: Container, port: PortRef): number | undefined {
  return typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort;
}

/** The generated ConfigMap's files: key (as mounted) -> path under deploy/. */
function generatedConfigMap(set: DeploySet, name: string, namespace: string): Map<string, string> | undefined {
  const gen = set.kustomization.configMapGenerator?.find((g) => g.name === name && (g.namespace ?? 'default') === namespace);
  if (!gen) return undefined;
  return new Map(
    (gen.files ?? []).map((f) => {
      const eq = f.indexOf('=');
      return eq === -1 ? [path.posix.basename(f), f] : [f.slice(0, eq), f.slice(eq + 1)];
    }),
  );
}

/** Runs a check, turning a thrown lookup failure into a problem. */
function problems(check: (report: (p: string) => void) => void): string[] {
  const out: string[] = [];
  try {
    check((p) => out.push(p));
  } catch (e) {
    out.push((e as Error).message);
  }
  return out;
}

/** Every value stored under key anywhere in a parsed YAML/JSON document. */
export function findAll(node: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) node.forEach((n) => findAll(n, key, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push(v);
      findAll(v, key, out);
    }
  }
  return out;
}

// ---- the checks ----

/** Every file the kustomization names exists; no manifest or sample policy is left out of it. */
export function checkKustomization(set: DeploySet): string[] {
  return problems((report) => {
    const k = set.kustomization;
    const named = [...(k.resources ?? []), ...(k.configMapGenerator ?? []).flatMap((g) => (g.files ?? []).map((f) => f.slice(f.indexOf('=') + 1)))];
    for (const f of named) if (!set.files.has(path.posix.normalize(f))) report(`kustomization.yaml names ${f}, which does not exist`);
    for (const f of set.files.keys()) {
      if (/^kubernetes\/[^/]+\.yaml$/.test(f) && !(k.resources ?? []).includes(f)) report(`${f} is not in the kustomization's resources`);
    }
    const agent = findMeshid(set, 'agent');
    const policies = generatedConfigMap(set, policyConfigMapName(set), namespaceOf(agent.deployment));
    const listed = new Set(policies?.values() ?? []);
    for (const f of set.files.keys()) {
      if (/^policies\/[^/]+\.ya?ml$/.test(f) && !listed.has(f)) report(`${f} is not in the policy ConfigMap generator`);
    }
  });
}

function policyConfigMapName(set: DeploySet): string {
  const { pod, container } = findMeshid(set, 'agent');
  const dir = agentConfig(set).policyDir;
  if (!dir) throw new Error('the agent has no --policy-dir');
  const at = locate(pod, container, dir);
  if (!at?.volume.configMap) throw new Error(`--policy-dir ${dir} is not a ConfigMap mount`);
  return at.volume.configMap.name;
}

/** The agent's args are valid `meshid agent` flags, run through the image's entry point. */
export function checkAgentArgs(set: DeploySet): string[] {
  return problems((report) => {
    const { container } = findMeshid(set, 'agent');
    if (container.command) report(`container ${container.name} overrides the image's entry point (command: ${JSON.stringify(container.command)})`);
    const config = agentConfig(set);
    for (const [flag, value] of [['sds-socket', config.sdsSocket], ['authz-socket', config.authzSocket], ['policy-dir', config.policyDir]] as const) {
      if (!value) report(`the agent has no --${flag}`);
    }
  });
}

/**
 * The SDS and ext_authz sockets: on a shared in-memory volume the agent may write, and the very
 * files the Envoy bootstrap (from its ConfigMap, as mounted in the Envoy container) dials.
 */
export function checkSockets(set: DeploySet): string[] {
  return problems((report) => {
    const { deployment, pod, container: agent } = findMeshid(set, 'agent');
    const envoy = findEnvoy(pod);
    const config = agentConfig(set);
    const bootstrap = envoyBootstrap(set, deployment, pod, envoy);
    const clusterFor = {
      'sds-socket': [...new Set(findAll(bootstrap, 'sds_config').map((c) => (c as SdsConfig).api_config_source?.grpc_services?.[0]?.envoy_grpc?.cluster_name))],
      'authz-socket': [...new Set(findAll(bootstrap, 'grpc_service').map((g) => (g as GrpcService).envoy_grpc?.cluster_name))],
    };
    for (const [flag, socket] of [['sds-socket', config.sdsSocket], ['authz-socket', config.authzSocket]] as const) {
      if (!socket) continue;
      const atAgent = locate(pod, agent, socket);
      if (!atAgent) {
        report(`--${flag} ${socket} is not on a volume (read-only root filesystem, and Envoy cannot reach it)`);
        continue;
      }
      if (atAgent.volume.emptyDir?.medium !== 'Memory') report(`--${flag} ${socket} is on volume ${atAgent.volume.name}, not an in-memory emptyDir`);
      if (atAgent.mount.readOnly) report(`--${flag} ${socket}: the agent mounts ${atAgent.volume.name} read-only`);
      const clusters = clusterFor[flag];
      if (clusters.length !== 1 || !clusters[0]) {
        report(`the Envoy bootstrap should use one cluster for --${flag}, found ${JSON.stringify(clusters)}`);
        continue;
      }
      const pipe = clusterPipe(bootstrap, clusters[0]);
      const atEnvoy = pipe ? locate(pod, envoy, pipe) : undefined;
      if (!atEnvoy || atEnvoy.volume.name !== atAgent.volume.name || atEnvoy.rel !== atAgent.rel) {
        report(
          `Envoy's cluster ${clusters[0]} dials ${pipe ?? '(no pipe)'} (${atEnvoy ? `${atEnvoy.volume.name}:${atEnvoy.rel}` : 'not on a volume'}), ` +
            `but the agent serves --${flag} at ${socket} (${atAgent.volume.name}:${atAgent.rel})`,
        );
      }
    }
  });
}

interface SdsConfig {
  api_config_source?: { grpc_services?: Array<{ envoy_grpc?: { cluster_name?: string } }> };
}
interface GrpcService {
  envoy_grpc?: { cluster_name?: string };
}
/** The part of an Envoy bootstrap the deployment tests read. */
export interface Bootstrap {
  static_resources?: { clusters?: Array<{ name: string; load_assignment?: { endpoints?: Array<{ lb_endpoints?: Array<{ endpoint?: { address?: { pipe?: { path?: string } } } }> }> } }> };
}

/** The Unix socket path of a cluster whose endpoint is a pipe. */
export function clusterPipe(bootstrap: Bootstrap, name: string): string | undefined {
  const c = bootstrap.static_resources?.clusters?.find((x) => x.name === name);
  return c?.load_assignment?.endpoints?.[0]?.lb_endpoints?.[0]?.endpoint?.address?.pipe?.path;
}

/** The bootstrap Envoy is started with: its -c path, through the mounted ConfigMap, to the file in deploy/. */
function envoyBootstrap(set: DeploySet, deployment: Deployment, pod: PodSpec, envoy: Container): Bootstrap {
  const args = [...(envoy.command ?? []), ...(envoy.args ?? [])];
  const i = args.findIndex((a) => a === '-c' || a === '--config-path');
  const configPath = i === -1 ? undefined : args[i + 1];
  if (!configPath) throw new Error(`container ${envoy.name} has no -c <bootstrap>`);
  const at = locate(pod, envoy, configPath);
  if (!at?.volume.configMap) throw new Error(`Envoy's bootstrap ${configPath} is not on a ConfigMap volume`);
  const generated = generatedConfigMap(set, at.volume.configMap.name, namespaceOf(deployment));
  if (!generated) throw new Error(`ConfigMap ${at.volume.configMap.name} (Envoy's bootstrap) is not generated by the kustomization in namespace ${namespaceOf(deployment)}`);
  const source = generated.get(at.rel);
  const text = source ? set.files.get(path.posix.normalize(source)) : undefined;
  if (text === undefined) throw new Error(`ConfigMap ${at.volume.configMap.name} has no key ${at.rel} (Envoy's -c ${configPath})`);
  return YAML.parse(text, { merge: true }) as Bootstrap;
}

function effective<K extends keyof SecurityContext>(pod: PodSpec, c: Container, key: K): SecurityContext[K] | undefined {
  return c.securityContext?.[key] ?? pod.securityContext?.[key];
}

/** The sockets are 0600: Envoy must run as the agent's uid. */
export function checkSocketOwner(set: DeploySet): string[] {
  return problems((report) => {
    const { pod, container: agent } = findMeshid(set, 'agent');
    const envoy = findEnvoy(pod);
    const [a, e] = [effective(pod, agent, 'runAsUser'), effective(pod, envoy, 'runAsUser')];
    if (a === undefined || e === undefined) report(`runAsUser must be explicit for the agent (${a}) and Envoy (${e}): the 0600 sockets need the same uid`);
    else if (a !== e) report(`the agent runs as uid ${a} and Envoy as uid ${e}: Envoy cannot connect to the agent's 0600 sockets`);
    const mode = agentConfig(set).sdsSocketMode;
    if ((mode & 0o077) !== 0) report(`--sds-socket-mode ${mode.toString(8)} opens the SDS socket beyond its owner`);
  });
}

/** --token-file is a projected service-account token for the CA's audience. */
export function checkToken(set: DeploySet): string[] {
  return problems((report) => {
    const { pod, container } = findMeshid(set, 'agent');
    const file = agentConfig(set).tokenFile;
    const at = locate(pod, container, file);
    const source = at?.volume.projected?.sources.find((s) => s.serviceAccountToken?.path === at.rel)?.serviceAccountToken;
    if (!source) {
      report(`--token-file ${file} is not a projected serviceAccountToken`);
      return;
    }
    if (source.audience !== DEFAULT_TOKEN_AUDIENCE) report(`the projected token's audience is ${source.audience}, not ${DEFAULT_TOKEN_AUDIENCE}`);
    const caAudience = caConfig(set).jwtAudience;
    if (source.audience !== caAudience) report(`the projected token's audience ${source.audience} is not the CA's --jwt-audience ${caAudience}`);
  });
}

/** --policy-dir is where the generated policy ConfigMap is mounted. */
export function checkPolicies(set: DeploySet): string[] {
  return problems((report) => {
    const { deployment, pod, container } = findMeshid(set, 'agent');
    const dir = agentConfig(set).policyDir!;
    const at = locate(pod, container, dir);
    if (!at || at.rel !== '' || !at.volume.configMap) {
      report(`--policy-dir ${dir} is not the mount point of a ConfigMap volume`);
      return;
    }
    const generated = generatedConfigMap(set, at.volume.configMap.name, namespaceOf(deployment));
    if (!generated) report(`ConfigMap ${at.volume.configMap.name} is not generated by the kustomization in namespace ${namespaceOf(deployment)}`);
    else if (![...generated.values()].some((f) => f.startsWith('policies/'))) report(`ConfigMap ${at.volume.configMap.name} holds no file of deploy/policies`);
  });
}

/** Liveness and readiness hit /healthz and /readyz on the admin port, which the kubelet can reach. */
export function checkProbes(set: DeploySet): string[] {
  return problems((report) => {
    const { container } = findMeshid(set, 'agent');
    const admin = agentConfig(set).adminListen;
    if (!['0.0.0.0', '::'].includes(admin.host)) report(`--admin-listen ${admin.host}:${admin.port}: the kubelet probes the pod IP, so listen on 0.0.0.0 or ::`);
    for (const [kind, wanted] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
      const get = container[kind]?.httpGet;
      if (!get) {
        report(`the agent has no ${kind} httpGet`);
        continue;
      }
      if (get.path !== wanted) report(`${kind} path is ${get.path}, not ${wanted}`);
      const port = resolvePort(container, get.port);
      if (port !== admin.port) report(`${kind} port ${get.port} (${port}) is not the --admin-listen port ${admin.port}`);
    }
  });
}

/** Every container of every Deployment: non-root, read-only root, no privilege escalation, no capabilities. */
export function checkContainerSecurity(set: DeploySet): string[] {
  return problems((report) => {
    for (const d of deployments(set)) {
      const pod = d.spec.template.spec;
      for (const c of pod.containers) {
        const where = `${d.metadata.name}/${c.name}`;
        if (effective(pod, c, 'runAsNonRoot') !== true) report(`${where}: runAsNonRoot is not true`);
        if (effective(pod, c, 'runAsUser') === 0) report(`${where}: runs as uid 0`);
        if (c.securityContext?.privileged) report(`${where}: privileged`);
        if (c.securityContext?.allowPrivilegeEscalation !== false) report(`${where}: allowPrivilegeEscalation is not false`);
        if (c.securityContext?.readOnlyRootFilesystem !== true) report(`${where}: readOnlyRootFilesystem is not true`);
        if (!c.securityContext?.capabilities?.drop?.includes('ALL')) report(`${where}: capabilities are not dropped (drop: [ALL])`);
        if ((c.securityContext?.capabilities?.add ?? []).length > 0) report(`${where}: adds capabilities`);
      }
    }
  });
}

/** Files meshid reads or writes are on volumes (the root filesystem is read-only and holds none of them). */
export function checkFilesOnVolumes(set: DeploySet): string[] {
  return problems((report) => {
    const agent = findMeshid(set, 'agent');
    const a = agentConfig(set);
    const ca = findMeshid(set, 'ca');
    const c = caConfig(set);
    const wanted: Array<[typeof agent, string, string | undefined, 'read' | 'write']> = [
      [agent, 'ca-bundle', a.caBundle, 'read'],
      [agent, 'trust-bundle', a.trustBundle, 'read'],
      [agent, 'token-file', a.tokenFile, 'read'],
      [agent, 'policy-dir', a.policyDir, 'read'],
      [ca, 'state-dir', c.stateDir, 'write'],
      [ca, 'jwt-keys', c.jwtKeys, 'read'],
      [ca, 'static-tokens', c.staticTokens, 'read'],
    ];
    for (const [{ pod, container }, flag, file, access] of wanted) {
      if (!file) continue;
      const at = locate(pod, container, file);
      if (!at) report(`${container.name} --${flag} ${file} is not on any volume`);
      else if (access === 'write' && (at.mount.readOnly || at.volume.configMap || at.volume.secret || at.volume.projected)) {
        report(`${container.name} --${flag} ${file} must be writable, but ${at.volume.name} is read-only`);
      }
    }
  });
}

/** The agent reaches the CA: the Service, its port, the name in the CA's certificate, the trust domain. */
export function checkCa(set: DeploySet): string[] {
  return problems((report) => {
    const { deployment, container } = findMeshid(set, 'ca');
    const ca = caConfig(set);
    const agent = agentConfig(set);
    if (container.command) report(`container ${container.name} overrides the image's entry point`);
    if (!['0.0.0.0', '::'].includes(ca.listen.host)) report(`the CA's --listen ${ca.listen.host} is not reachable from other pods`);
    if (!container.ports?.some((p) => p.containerPort === ca.listen.port)) report(`the CA container does not declare port ${ca.listen.port} (--listen)`);
    for (const kind of ['readinessProbe', 'livenessProbe'] as const) {
      const probe = container[kind]?.tcpSocket ?? container[kind]?.httpGet;
      if (probe && resolvePort(container, probe.port) !== ca.listen.port) report(`the CA's ${kind} port ${probe.port} is not --listen ${ca.listen.port}`);
    }

    const labels = deployment.spec.template.metadata?.labels ?? {};
    const services = set.objects.filter(
      (o): o is Service =>
        o.kind === 'Service' &&
        namespaceOf(o) === namespaceOf(deployment) &&
        Object.entries((o as Service).spec.selector ?? {}).every(([k, v]) => labels[k] === v) &&
        Object.keys((o as Service).spec.selector ?? {}).length > 0,
    );
    const [hostPort, host = '', portText = ''] = /^(.*):(\d+)$/.exec(agent.caAddress) ?? [];
    if (!hostPort) {
      report(`--ca-address ${agent.caAddress} is not HOST:PORT`);
      return;
    }
    const [svcName, svcNamespace, ...rest] = host.split('.');
    const service = services.find((s) => s.metadata.name === svcName && namespaceOf(s) === svcNamespace);
    if (!service || !['', 'svc', 'svc.cluster.local'].includes(rest.join('.'))) {
      report(`--ca-address ${agent.caAddress} does not name a Service of the CA (${services.map((s) => `${s.metadata.name}.${namespaceOf(s)}.svc`).join(', ') || 'none selects its pods'})`);
      return;
    }
    const port = service.spec.ports.find((p) => p.port === Number(portText));
    if (!port) report(`Service ${service.metadata.name} has no port ${portText} (--ca-address)`);
    else if (resolvePort(container, port.targetPort ?? port.port) !== ca.listen.port) {
      report(`Service ${service.metadata.name} port ${port.port} targets ${port.targetPort}, but the CA listens on ${ca.listen.port}`);
    }
    const serverName = agent.caServerName ?? host;
    if (!ca.san.includes(serverName)) report(`the CA's --san names ${JSON.stringify(ca.san)}, not ${serverName}, which the agent verifies`);
    if (ca.trustDomain !== agent.trustDomain) report(`the CA issues in ${ca.trustDomain}, the agent expects ${agent.trustDomain}`);
  });
}

/** meshid's containers run one image, tagged with this version. */
export function checkImages(set: DeploySet): string[] {
  return problems((report) => {
    for (const command of ['agent', 'ca'] as const) {
      const { container } = findMeshid(set, command);
      const tag = /:([^/:@]+)$/.exec(container.image)?.[1];
      if (tag !== set.version) report(`meshid ${command} runs ${container.image}, not tag ${set.version} (package.json)`);
    }
  });
}

export const ALL_CHECKS = {
  checkKustomization,
  checkAgentArgs,
  checkSockets,
  checkSocketOwner,
  checkToken,
  checkPolicies,
  checkProbes,
  checkContainerSecurity,
  checkFilesOnVolumes,
  checkCa,
  checkImages,
};

/**
 * deploy/kubernetes and deploy/kustomization.yaml against what meshid depends on (see the checks
 * in kubernetes-manifests.ts). Every check passes on the real files, and every check is shown to
 * fail on a copy broken the way a careless edit would break it.
 */
import test from 'ava';
import {
  ALL_CHECKS,
  type Container,
  type DeploySet,
  type Deployment,
  findMeshid,
  type K8sObject,
  loadDeploySet,
  locate,
  type Service,
} from './kubernetes-manifests.js';

const real = loadDeploySet();

test('deploy/kubernetes parses into the expected objects', (t) => {
  const kinds = real.objects.map((o) => `${o.kind}/${o.metadata.namespace ?? '-'}/${o.metadata.name}`);
  for (const wanted of ['Deployment/meshid-system/meshid-ca', 'Service/meshid-system/meshid-ca', 'Deployment/shop/frontend']) t.true(kinds.includes(wanted), kinds.join(', '));
  t.is(findMeshid(real, 'agent').deployment.metadata.name, 'frontend');
  t.is(findMeshid(real, 'ca').deployment.metadata.name, 'meshid-ca');
});

for (const [name, check] of Object.entries(ALL_CHECKS)) {
  test(`${name} passes on deploy/`, (t) => {
    t.deepEqual(check(structuredClone(real)), []);
  });
}

// ---- mutations: each one must make its check report a specific problem ----

function mutated(edit: (set: DeploySet) => void): DeploySet {
  const copy = structuredClone(real);
  edit(copy);
  return copy;
}
const agent = (set: DeploySet) => findMeshid(set, 'agent').container;
const ca = (set: DeploySet) => findMeshid(set, 'ca').container;
const pod = (set: DeploySet, command: 'agent' | 'ca') => findMeshid(set, command).pod;
const envoy = (set: DeploySet) => pod(set, 'agent').containers.find((c) => c.name === 'envoy')!;
const named = <T extends K8sObject>(set: DeploySet, kind: string, name: string) => set.objects.find((o) => o.kind === kind && o.metadata.name === name) as T;

/** Sets --flag=value in a container's args (replacing the flag if present, else appending). */
function setArg(c: Container, flag: string, value: string | undefined): void {
  const args = (c.args ?? []).filter((a) => !a.startsWith(`--${flag}=`));
  c.args = value === undefined ? args : [...args, `--${flag}=${value}`];
}
function renameArg(c: Container, from: string, to: string): void {
  c.args = (c.args ?? []).map((a) => (a.startsWith(`--${from}=`) ? `--${to}=${a.slice(from.length + 3)}` : a));
}

interface Mutation {
  readonly check: keyof typeof ALL_CHECKS;
  readonly edit: (set: DeploySet) => void;
  readonly expect: RegExp;
}

const MUTATIONS: Record<string, Mutation> = {
  'a resource that does not exist': {
    check: 'checkKustomization',
    edit: (s) => s.kustomization.resources!.push('kubernetes/30-missing.yaml'),
    expect: /names kubernetes\/30-missing\.yaml, which does not exist/,
  },
  'a manifest left out of the resources': {
    check: 'checkKustomization',
    edit: (s) => (s.kustomization.resources = s.kustomization.resources!.filter((r) => r !== 'kubernetes/10-ca.yaml')),
    expect: /kubernetes\/10-ca\.yaml is not in the kustomization's resources/,
  },
  'a sample policy left out of the ConfigMap': {
    check: 'checkKustomization',
    edit: (s) => s.files.set('policies/50-new.yaml', 'kind: AuthorizationPolicy\n'),
    expect: /policies\/50-new\.yaml is not in the policy ConfigMap generator/,
  },
  'a generator file that does not exist': {
    check: 'checkKustomization',
    edit: (s) => (s.kustomization.configMapGenerator!.find((g) => g.name === 'envoy-bootstrap')!.files = ['envoy.yaml=envoy/sidecar.yaml']),
    expect: /names envoy\/sidecar\.yaml, which does not exist/,
  },
  'a misspelt agent flag': {
    check: 'checkAgentArgs',
    edit: (s) => renameArg(agent(s), 'sds-socket', 'sds-sokcet'),
    expect: /--sds-sokcet: unknown flag \(did you mean --sds-socket\?\)/,
  },
  'an invalid agent value': {
    check: 'checkAgentArgs',
    edit: (s) => setArg(agent(s), 'renew-fraction', '2'),
    expect: /renew-fraction \(flag --renew-fraction\): must be at most 0\.9/,
  },
  'a missing required agent flag': {
    check: 'checkAgentArgs',
    edit: (s) => setArg(agent(s), 'ca-address', undefined),
    expect: /ca-address: required/,
  },
  'an agent without ext_authz': {
    check: 'checkAgentArgs',
    edit: (s) => setArg(agent(s), 'authz-socket', undefined),
    expect: /the agent has no --authz-socket/,
  },
  "an agent command that bypasses the image's entry point": {
    check: 'checkAgentArgs',
    edit: (s) => (agent(s).command = ['node', '/app/main.js']),
    expect: /overrides the image's entry point/,
  },
  'the agent serving ext_authz where Envoy does not dial': {
    check: 'checkSockets',
    edit: (s) => setArg(agent(s), 'authz-socket', '/var/run/meshid/ext-authz.sock'),
    expect: /cluster meshid_authz dials \/var\/run\/meshid\/authz\.sock \(meshid-sockets:authz\.sock\), but the agent serves --authz-socket at \/var\/run\/meshid\/ext-authz\.sock/,
  },
  'the bootstrap dialling another SDS socket': {
    check: 'checkSockets',
    edit: (s) => s.files.set('envoy/envoy.yaml', s.files.get('envoy/envoy.yaml')!.replace('path: /var/run/meshid/sds.sock', 'path: /var/run/meshid/sds-x.sock')),
    expect: /cluster meshid_sds dials \/var\/run\/meshid\/sds-x\.sock/,
  },
  'Envoy mounting the socket volume elsewhere': {
    check: 'checkSockets',
    edit: (s) => (envoy(s).volumeMounts!.find((m) => m.name === 'meshid-sockets')!.mountPath = '/run/meshid'),
    expect: /cluster meshid_sds dials \/var\/run\/meshid\/sds\.sock \(not on a volume\)/,
  },
  'sockets on a disk-backed emptyDir': {
    check: 'checkSockets',
    edit: (s) => (pod(s, 'agent').volumes!.find((v) => v.name === 'meshid-sockets')!.emptyDir = {}),
    expect: /is on volume meshid-sockets, not an in-memory emptyDir/,
  },
  'a socket on the read-only root filesystem': {
    check: 'checkSockets',
    edit: (s) => setArg(agent(s), 'sds-socket', '/tmp/sds.sock'),
    expect: /--sds-socket \/tmp\/sds\.sock is not on a volume/,
  },
  'Envoy started with a bootstrap the ConfigMap does not hold': {
    check: 'checkSockets',
    edit: (s) => (envoy(s).args = ['-c', '/etc/envoy/bootstrap.yaml']),
    expect: /ConfigMap envoy-bootstrap has no key bootstrap\.yaml/,
  },
  'Envoy under another uid': {
    check: 'checkSocketOwner',
    edit: (s) => (envoy(s).securityContext!.runAsUser = 101),
    expect: /the agent runs as uid 1337 and Envoy as uid 101/,
  },
  'an SDS socket open to everyone': {
    check: 'checkSocketOwner',
    edit: (s) => setArg(agent(s), 'sds-socket-mode', '0666'),
    expect: /--sds-socket-mode 666 opens the SDS socket beyond its owner/,
  },
  'a token for the wrong audience': {
    check: 'checkToken',
    edit: (s) => (pod(s, 'agent').volumes!.find((v) => v.name === 'meshid-token')!.projected!.sources[0]!.serviceAccountToken!.audience = 'kubernetes'),
    expect: /audience is kubernetes, not istio-ca/,
  },
  'a CA expecting another audience': {
    check: 'checkToken',
    edit: (s) => setArg(ca(s), 'jwt-audience', 'meshid'),
    expect: /audience istio-ca is not the CA's --jwt-audience meshid/,
  },
  '--token-file beside the projected token': {
    check: 'checkToken',
    edit: (s) => setArg(agent(s), 'token-file', '/var/run/secrets/meshid/tokens/token'),
    expect: /--token-file \/var\/run\/secrets\/meshid\/tokens\/token is not a projected serviceAccountToken/,
  },
  '--policy-dir beside the policy mount': {
    check: 'checkPolicies',
    edit: (s) => setArg(agent(s), 'policy-dir', '/etc/meshid/policy'),
    expect: /--policy-dir \/etc\/meshid\/policy is not the mount point of a ConfigMap volume/,
  },
  'the policy ConfigMap generated in another namespace': {
    check: 'checkPolicies',
    edit: (s) => (s.kustomization.configMapGenerator!.find((g) => g.name === 'meshid-policies')!.namespace = 'default'),
    expect: /ConfigMap meshid-policies is not generated by the kustomization in namespace shop/,
  },
  'a readiness probe on the wrong path': {
    check: 'checkProbes',
    edit: (s) => (agent(s).readinessProbe!.httpGet!.path = '/ready'),
    expect: /readinessProbe path is \/ready, not \/readyz/,
  },
  'a liveness probe on the wrong port': {
    check: 'checkProbes',
    edit: (s) => (agent(s).livenessProbe!.httpGet!.port = 15020),
    expect: /livenessProbe port 15020 \(15020\) is not the --admin-listen port 15021/,
  },
  'an admin endpoint on loopback': {
    check: 'checkProbes',
    edit: (s) => setArg(agent(s), 'admin-listen', '127.0.0.1:15021'),
    expect: /the kubelet probes the pod IP/,
  },
  'a root container': {
    check: 'checkContainerSecurity',
    edit: (s) => (agent(s).securityContext!.runAsUser = 0),
    expect: /frontend\/meshid: runs as uid 0/,
  },
  'a pod without runAsNonRoot': {
    check: 'checkContainerSecurity',
    edit: (s) => delete pod(s, 'ca').securityContext!.runAsNonRoot,
    expect: /meshid-ca\/ca: runAsNonRoot is not true/,
  },
  'a writable root filesystem': {
    check: 'checkContainerSecurity',
    edit: (s) => (envoy(s).securityContext!.readOnlyRootFilesystem = false),
    expect: /frontend\/envoy: readOnlyRootFilesystem is not true/,
  },
  'privilege escalation allowed': {
    check: 'checkContainerSecurity',
    edit: (s) => delete pod(s, 'agent').containers.find((c) => c.name === 'app')!.securityContext!.allowPrivilegeEscalation,
    expect: /frontend\/app: allowPrivilegeEscalation is not false/,
  },
  'capabilities kept': {
    check: 'checkContainerSecurity',
    edit: (s) => (ca(s).securityContext!.capabilities = { drop: ['NET_RAW'] }),
    expect: /meshid-ca\/ca: capabilities are not dropped/,
  },
  'a capability added': {
    check: 'checkContainerSecurity',
    edit: (s) => (envoy(s).securityContext!.capabilities!.add = ['NET_ADMIN']),
    expect: /frontend\/envoy: adds capabilities/,
  },
  'a privileged container': {
    check: 'checkContainerSecurity',
    edit: (s) => (agent(s).securityContext!.privileged = true),
    expect: /frontend\/meshid: privileged/,
  },
  'a CA bundle the pod does not mount': {
    check: 'checkFilesOnVolumes',
    edit: (s) => setArg(agent(s), 'ca-bundle', '/etc/ssl/meshid.pem'),
    expect: /meshid --ca-bundle \/etc\/ssl\/meshid\.pem is not on any volume/,
  },
  'CA state on a read-only mount': {
    check: 'checkFilesOnVolumes',
    edit: (s) => (ca(s).volumeMounts!.find((m) => m.name === 'state')!.readOnly = true),
    expect: /ca --state-dir \/var\/lib\/meshid-ca must be writable/,
  },
  'a misspelt CA flag': {
    check: 'checkCa',
    edit: (s) => renameArg(ca(s), 'listen', 'lisen'),
    expect: /container ca \(meshid ca\): --lisen: unknown flag \(did you mean --listen\?\)/,
  },
  'a CA listening on loopback': {
    check: 'checkCa',
    edit: (s) => setArg(ca(s), 'listen', '127.0.0.1:15012'),
    expect: /the CA's --listen 127\.0\.0\.1 is not reachable from other pods/,
  },
  'a Service on another port than the agent dials': {
    check: 'checkCa',
    edit: (s) => (named<Service>(s, 'Service', 'meshid-ca').spec.ports[0]!.port = 443),
    expect: /Service meshid-ca has no port 15012 \(--ca-address\)/,
  },
  'a Service targeting another port than the CA listens on': {
    check: 'checkCa',
    edit: (s) => (named<Service>(s, 'Service', 'meshid-ca').spec.ports[0]!.targetPort = 8443),
    expect: /port 15012 targets 8443, but the CA listens on 15012/,
  },
  'a Service that selects no CA pod': {
    check: 'checkCa',
    edit: (s) => (named<Service>(s, 'Service', 'meshid-ca').spec.selector = { app: 'meshid-ca-v2' }),
    expect: /does not name a Service of the CA \(none selects its pods\)/,
  },
  'an agent dialling a CA in another namespace': {
    check: 'checkCa',
    edit: (s) => setArg(agent(s), 'ca-address', 'meshid-ca.istio-system.svc:15012'),
    expect: /--ca-address meshid-ca\.istio-system\.svc:15012 does not name a Service of the CA \(meshid-ca\.meshid-system\.svc\)/,
  },
  "a CA certificate without the Service's name": {
    check: 'checkCa',
    edit: (s) => setArg(ca(s), 'san', undefined),
    expect: /the CA's --san names \[\], not meshid-ca\.meshid-system\.svc/,
  },
  'a CA probe on another port': {
    check: 'checkCa',
    edit: (s) => (ca(s).readinessProbe!.tcpSocket!.port = 15014),
    expect: /the CA's readinessProbe port 15014 is not --listen 15012/,
  },
  'a CA in another trust domain': {
    check: 'checkCa',
    edit: (s) => setArg(ca(s), 'trust-domain', 'example.org'),
    expect: /the CA issues in example\.org, the agent expects cluster\.local/,
  },
  'an image tag behind the package version': {
    check: 'checkImages',
    edit: (s) => (ca(s).image = 'ghcr.io/meshid/meshid:0.0.9'),
    expect: /meshid ca runs ghcr\.io\/meshid\/meshid:0\.0\.9, not tag 0\.1\.0/,
  },
};

for (const [what, m] of Object.entries(MUTATIONS)) {
  test(`${m.check} fails on ${what}`, (t) => {
    const found = ALL_CHECKS[m.check](mutated(m.edit));
    t.true(
      found.some((p) => m.expect.test(p)),
      `expected a problem matching ${m.expect}, got:\n  ${found.join('\n  ') || '(none)'}`,
    );
  });
}

test('every check has at least one mutation that makes it fail', (t) => {
  const covered = new Set(Object.values(MUTATIONS).map((m) => m.check));
  t.deepEqual(Object.keys(ALL_CHECKS).filter((c) => !covered.has(c as keyof typeof ALL_CHECKS)), []);
});

test('named probe ports and subPath mounts resolve as the kubelet resolves them', (t) => {
  const set = mutated((s) => (agent(s).livenessProbe!.httpGet!.port = 'http-admin'));
  t.deepEqual(ALL_CHECKS.checkProbes(set), []);
  const d = named<Deployment>(real, 'Deployment', 'frontend');
  const c = { ...agent(real), volumeMounts: [{ name: 'meshid-sockets', mountPath: '/sockets/sds.sock', subPath: 'sds.sock' }] };
  t.like(locate(d.spec.template.spec, c, '/sockets/sds.sock'), { rel: 'sds.sock', volume: { name: 'meshid-sockets' } });
  t.is(locate(d.spec.template.spec, c, '/sockets-other/sds.sock'), undefined);
});

import { authzOptionSpecs } from '../../src/authz/options.js';
import test from 'ava';
import { agentOptions, agentRules } from '../../src/cli/agent.js';
import { loadConfig, renderConfig, rule } from '../../src/config/load.js';
import { MeshidError } from '../../src/lib/errors.js';
import { type ConfigOf, opt, parseDuration } from '../../src/config/options.js';

const specs = {
  caAddress: opt.hostPort('ca-address', { description: 'CA', required: true }),
  ttl: opt.duration('ttl', { description: 'lifetime', default: 3_600_000, min: 60_000 }),
  token: opt.string('token', { description: 'secret', secret: true }),
  verbose: opt.bool('verbose', { description: 'talk', default: false }),
  sans: opt.list('san', { description: 'names', default: [] }),
  fraction: opt.number('fraction', { description: 'f', default: 0.5, min: 0, max: 1 }),
  mode: opt.oneOf('mode', ['a', 'b'], { description: 'm', default: 'a' }),
};

const files = (content: Record<string, string>) => (p: string) => {
  const c = content[p];
  if (c === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return c;
};

test('precedence: defaults < file < env < flags, and sources are recorded', (t) => {
  const loaded = loadConfig(specs, {
    argv: ['--config', 'm.yaml', '--ttl', '2h'],
    env: { MESHID_TTL: '30m', MESHID_VERBOSE: 'true', MESHID_CA_ADDRESS: '10.0.0.1:15012' },
    readFile: files({ 'm.yaml': 'ca-address: ca.svc:15012\nttl: 10m\nsan: [a, b]\n' }),
  });
  t.deepEqual(loaded.config.caAddress, { host: '10.0.0.1', port: 15012 });
  t.is(loaded.config.ttl, 7_200_000);
  t.true(loaded.config.verbose);
  t.deepEqual(loaded.config.sans, ['a', 'b']);
  t.is(loaded.config.fraction, 0.5);
  t.deepEqual(loaded.sources.ttl, { kind: 'flag', name: 'ttl' });
  t.deepEqual(loaded.sources.caAddress, { kind: 'env', name: 'MESHID_CA_ADDRESS' });
  t.deepEqual(loaded.sources.sans, { kind: 'file', path: 'm.yaml' });
  t.deepEqual(loaded.sources.fraction, { kind: 'default' });
  t.true(Object.isFrozen(loaded.config));
});

test('errors name the key and the source, all at once', (t) => {
  const e = t.throws(
    () =>
      loadConfig(specs, {
        argv: ['--config', 'm.yaml', '--ttl', '5 minutes', '--fraction=2'],
        env: { MESHID_CA_ADDRESS: 'no-port' },
        readFile: files({ 'm.yaml': 'mode: c\nttll: 1h\n' }),
      }),
    { instanceOf: MeshidError },
  );
  const text = e!.problems.join('\n');
  t.regex(text, /^ttl \(flag --ttl\): expected a duration/m);
  t.regex(text, /^fraction \(flag --fraction\): must be at most 1, got 2/m);
  t.regex(text, /^ca-address \(env MESHID_CA_ADDRESS\): expected HOST:PORT/m);
  t.regex(text, /^mode \(file m\.yaml\): expected one of a, b/m);
  t.regex(text, /^ttll \(file m\.yaml\): unknown setting \(did you mean ttl\?\)/m);
  t.is(e!.problems.length, 5);
});

test('unknown flags are suggested, missing values and required keys reported', (t) => {
  const e = t.throws(() => loadConfig(specs, { argv: ['--ca-adress', 'x:1', '--token'], env: {} }), { instanceOf: MeshidError });
  const text = e!.problems.join('\n');
  t.regex(text, /--ca-adress: unknown flag \(did you mean --ca-address\?\)/);
  t.regex(text, /--token: needs a value/);
  t.regex(text, /ca-address: required/);
});

test('a missing or malformed config file is an error naming the file', (t) => {
  const missing = t.throws(() => loadConfig(specs, { argv: ['--config', 'nope.yaml', '--ca-address', 'a:1'], env: {}, readFile: files({}) }), {
    instanceOf: MeshidError,
  });
  t.regex(missing!.message, /config \(file nope\.yaml\): cannot read: ENOENT/);
  const bad = t.throws(() => loadConfig(specs, { argv: ['--ca-address', 'a:1'], env: { MESHID_CONFIG: 'b.yaml' }, readFile: files({ 'b.yaml': '- a\n- b\n' }) }), {
    instanceOf: MeshidError,
  });
  t.regex(bad!.message, /expected a mapping/);
});

test('repeatable flags accumulate; switches take no value; IPv6 host:port', (t) => {
  const { config } = loadConfig(specs, { argv: ['--san', 'a', '--san=b,c', '--verbose', '--ca-address', '[::1]:9'], env: {} });
  t.deepEqual(config.sans, ['a', 'b', 'c']);
  t.true(config.verbose);
  t.deepEqual(config.caAddress, { host: '::1', port: 9 });
});

test('--print-config redacts secrets and shows sources', (t) => {
  const loaded = loadConfig(specs, { argv: ['--ca-address', 'ca:1', '--token', 's3cr3t', '--print-config'], env: {} });
  t.true(loaded.printConfig);
  const text = renderConfig(specs, loaded);
  t.notRegex(text, /s3cr3t/);
  t.regex(text, /token: "\[redacted\]"\s+# flag --token/);
  t.regex(text, /ttl: 1h\s+# default/);
  t.regex(text, /ca-address: ca:1\s+# flag --ca-address/);
});

test('durations', (t) => {
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('1h30m'), 5_400_000);
  t.is(parseDuration('7d'), 604_800_000);
  t.throws(() => parseDuration('10'));
  t.throws(() => parseDuration('1 h'));
  t.throws(() => parseDuration('-1s'));
});

test('--help answers even when the environment or the config file is bad', (t) => {
  const loaded = loadConfig(specs, { argv: ['--help'], env: { MESHID_TTL: 'soon', MESHID_CONFIG: 'missing.yaml' }, readFile: files({}) });
  t.true(loaded.help);
});

test('one-shot tools (no file and env) have no --config or --print-config', (t) => {
  const e = t.throws(() => loadConfig(specs, { argv: ['--ca-address', 'a:1', '--config', 'x.yaml', '--print-config'], env: {}, fileAndEnv: false }), {
    instanceOf: MeshidError,
  });
  t.regex(e!.message, /--config: unknown flag/);
  t.regex(e!.message, /--print-config: unknown flag/);
});

const ruled = {
  ...specs,
  maxTtl: opt.duration('max-ttl', { description: 'longest', default: 7_200_000 }),
};
type Ruled = ConfigOf<typeof ruled>;
const rules = [
  rule<Ruled>({ keys: ['ttl', 'maxTtl'], check: (c) => (c.ttl > c.maxTtl ? 'ttl is longer than max-ttl' : undefined) }),
  rule<Ruled>({ keys: ['sans'], warning: true, check: (c, given) => (given('sans') && !c.verbose ? 'has no effect without verbose' : undefined) }),
];

test('a cross-field rule names every key it reads with its source, or "unset"', (t) => {
  const e = t.throws(() => loadConfig(ruled, { argv: ['--ca-address', 'a:1', '--ttl', '3h'], env: { MESHID_MAX_TTL: '1h' }, rules }), { instanceOf: MeshidError });
  t.deepEqual(e!.problems, ['ttl (flag --ttl), max-ttl (env MESHID_MAX_TTL): ttl is longer than max-ttl']);
  const ok = loadConfig(ruled, { argv: ['--ca-address', 'a:1', '--ttl', '2h'], env: {}, rules });
  t.is(ok.config.ttl, 7_200_000, 'equal is allowed');
});

test('a rule over a value that failed to parse is skipped, so the default does not stand in for it', (t) => {
  const e = t.throws(() => loadConfig(ruled, { argv: ['--ca-address', 'a:1', '--max-ttl', 'soon'], env: {}, rules }), { instanceOf: MeshidError });
  t.is(e!.problems.length, 1);
  t.regex(e!.problems[0]!, /^max-ttl \(flag --max-ttl\): expected a duration/);
});

test('a warning rule reports a setting that has no effect, only when the user gave it, and the load succeeds', (t) => {
  const warned = loadConfig(ruled, { argv: ['--ca-address', 'a:1', '--san', 'x'], env: {}, rules });
  t.deepEqual(warned.warnings, ['san (flag --san): has no effect without verbose']);
  t.deepEqual(loadConfig(ruled, { argv: ['--ca-address', 'a:1'], env: {}, rules }).warnings, [], 'a default is not a choice the user made');
  t.deepEqual(loadConfig(ruled, { argv: ['--ca-address', 'a:1', '--san', 'x', '--verbose'], env: {}, rules }).warnings, []);
});

test('a rule naming a key the command does not have is a programming error, not a user error', (t) => {
  t.throws(() => loadConfig(specs, { argv: ['--ca-address', 'a:1'], env: {}, rules }), { message: /config rule names maxTtl/ });
});

test('the agent schema warns about ext_authz settings while ext_authz is off, and refuses a listener without policies', (t) => {
  const base = ['--ca-address', 'ca:1', '--ca-bundle', 'b', '--token-file', 't'];
  const off = loadConfig(agentOptions, { argv: [...base, '--policy-dir', '/p', '--authz-deny-details=false'], env: {}, rules: agentRules });
  t.deepEqual(off.warnings, [
    'policy-dir (flag --policy-dir): has no effect without authz-socket or authz-listen (ext_authz is off)',
    'authz-deny-details (flag --authz-deny-details): has no effect without authz-socket or authz-listen (ext_authz is off)',
  ]);
  t.deepEqual(loadConfig(agentOptions, { argv: [...base, '--policy-dir', '/p', '--authz-listen', '127.0.0.1:0'], env: {}, rules: agentRules }).warnings, []);
  const e = t.throws(() => loadConfig(agentOptions, { argv: [...base, '--authz-listen', '127.0.0.1:0'], env: {}, rules: agentRules }), { instanceOf: MeshidError });
  t.regex(e!.message, /^authz-socket \(unset\), authz-listen \(flag --authz-listen\), policy-dir \(unset\): ext_authz needs policy-dir/);
});

test('--policy-resync 0 is accepted and means "only on events" (a bare 0 needs no unit)', (t) => {
  t.is(parseDuration('0'), 0);
  t.is(authzOptionSpecs.policyResync.parse('0'), 0);
  t.throws(() => parseDuration('00'));
  t.throws(() => parseDuration('5'));
});

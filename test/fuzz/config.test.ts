/** Properties of config loading: flags, MESHID_* variables and the config file, in any mix. */
import fc from 'fast-check';
import YAML from 'yaml';
import { agentOptions, agentRules } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { envName } from '../../src/config/options.js';
import { MeshidError } from '../../src/lib/errors.js';
import { fuzz } from './harness.js';

const specs = Object.values(agentOptions) as { flag: string; required?: boolean }[];
const flags = specs.map((s) => s.flag);
const value = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '0', '-1', '1s', '10m', '2562047788015215h', '1e309', 'NaN', '127.0.0.1:0', '[::1]:9', 'host:99999', ':', 'true', 'false',
    'spiffe://example.org/ns/a/sa/b', 'spiffe://example.org', 'EXAMPLE.org', 'unix:///tmp/x.sock', '0640', '0999', 'debug', '--', '=', 'a,b,,c', '/dev/null'),
);
const argvItem = fc.oneof(
  fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [`--${f}`, v]),
  fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [`--${f}=${v}`]),
  fc.constantFrom(...flags).map((f) => [`--${f}`]),
  fc.constantFrom(['--no-such-flag'], ['--config', 'c.yaml'], ['--print-config'], ['-x'], ['positional'], ['--help']),
);
const fileValue = fc.oneof(value, fc.integer(), fc.boolean(), fc.constant(null), fc.array(value, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), value, { maxKeys: 2 }));

fuzz('config-load', 'any mix of flags, env and config file loads or fails with config_invalid; a loaded config has every required option', fc.property(
  fc.array(argvItem, { maxLength: 8 }),
  fc.dictionary(fc.constantFrom(...flags).map(envName), value, { maxKeys: 4 }),
  fc.oneof(fc.string({ maxLength: 40 }), fc.dictionary(fc.constantFrom(...flags, 'unknown-key', 'caAddress'), fileValue, { maxKeys: 5 }).map((o) => YAML.stringify(o))),
  fc.boolean(),
  (argvParts, env, fileText, useFileEnv) => {
    const argv = argvParts.flat();
    const fullEnv: Record<string, string> = { ...env, ...(useFileEnv ? { MESHID_CONFIG: 'c.yaml' } : {}) };
    let loaded;
    try {
      loaded = loadConfig(agentOptions, { argv, env: fullEnv, readFile: () => fileText, rules: agentRules });
    } catch (e) {
      if (e instanceof MeshidError && (e.code === 'config_invalid' || e.code === 'config_value_invalid')) {
        if (e.message.length > 20_000) throw new Error('a config error message of unbounded length');
        return;
      }
      throw e;
    }
    if (loaded.help) return;
    const config = loaded.config as Record<string, unknown>;
    for (const [key, spec] of Object.entries(agentOptions) as [string, { required?: boolean }][]) {
      if (spec.required && config[key] === undefined) throw new Error(`loaded without the required ${key}`);
    }
  }), { runs: 1500 });

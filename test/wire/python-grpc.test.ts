/**
 * Wire compatibility: Python's grpcio (a different gRPC implementation) obtains a certificate from
 * the CA using only proto/istio_ca.proto. Needs Debian's python3-grpcio, python3-protobuf,
 * protobuf-compiler and libprotobuf-dev (.ci/run installs them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { FRONTEND, leafOf, serviceAccountToken, STATIC_TOKEN, startHarness } from '../ca/harness.js';

const PYTHON = '/usr/bin/python3';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = path.join(REPO, 'test/wire/ca_client.py');
const INSTALL = 'install them with: apt-get install -y python3-grpcio python3-protobuf protobuf-compiler libprotobuf-dev';

function prerequisites(): string | undefined {
  const py = spawnSync(PYTHON, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' });
  if (py.error || py.status !== 0) return `${PYTHON} cannot import grpc and google.protobuf (${py.error?.message ?? py.stderr.trim().split('\n').at(-1)}); ${INSTALL}`;
  const protoc = spawnSync('protoc', ['--version'], { encoding: 'utf8' });
  if (protoc.error || protoc.status !== 0) return `protoc is not available (${protoc.error?.message ?? protoc.stderr}); ${INSTALL}`;
  if (!fs.existsSync('/usr/include/google/protobuf/struct.proto')) return `google/protobuf/struct.proto is missing from /usr/include; ${INSTALL}`;
  return undefined;
}

test('Python grpcio obtains a chain from meshid ca with a static token and with a JWT; a bad token is UNAUTHENTICATED', async (t) => {
  const missing = prerequisites();
  if (missing) return t.fail(missing);
  const generated = tempDir(t, 'meshid-wire-');
  const gen = spawnSync('protoc', [`--python_out=${generated}`, `-I${path.join(REPO, 'proto')}`, '-I/usr/include', path.join(REPO, 'proto/istio_ca.proto')], { encoding: 'utf8' });
  t.is(gen.status, 0, gen.stderr);

  const h = await startHarness(t);
  const bundle = path.join(h.dir, 'bundle.pem');
  fs.writeFileSync(bundle, h.ca.bundlePem);
  const python = (token: string) => {
    // Async: the CA runs in this process, so a synchronous spawn would block it from answering.
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(PYTHON, [SCRIPT, generated, h.ca.address, bundle, tempDir(t), FRONTEND, token], { timeout: 30_000 }, (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Record<string, unknown>),
        ),
      );
    });
  };

  for (const [how, token] of [['static token', STATIC_TOKEN], ['JWT', await serviceAccountToken(h.jwtKey.privateKey)]] as const) {
    const r = await python(token);
    t.true(r.ok, `${how}: ${JSON.stringify(r)}`);
    const chain = r.cert_chain as string[];
    t.is(chain.length, 2, how);
    const v = opensslVerify(tempDir(t), { roots: h.ca.bundlePem, leaf: chain[0]! });
    t.true(v.ok, v.output);
    const leaf = leafOf(chain);
    t.deepEqual(leaf.sans, [{ type: 'uri', value: FRONTEND }], how);
    t.is(leaf.notAfter.getTime() - leaf.notBefore.getTime(), (1800 + 60) * 1000, `${how}: validity_duration (int64, field 3) arrived`);
  }
  const refused = await python('wrong-token-wrong-token');
  t.like(refused, { ok: false, code: 'UNAUTHENTICATED' });
  t.regex(String(refused.details), /bearer token refused/);
});

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { loadConfig } from '../../src/config/load.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MeshidError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { sdsOptions } from '../../src/sds/options.js';
import { startSdsServer } from '../../src/sds/server.js';
import { TestIdentitySource } from '../helpers/test-identity-source.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestServer } from './support.js';

function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

async function refusal(socketPath: string): Promise<{ error: MeshidError; source: TestIdentitySource }> {
  const clock = new FakeClock(Date.now());
  const source = new TestIdentitySource({ clock });
  try {
    const server = await startSdsServer({ sdsSocket: socketPath, sdsSocketMode: 0o600 }, { source, clock, logger: silentLogger() });
    await server.close();
    throw new Error('the server started');
  } catch (e) {
    if (!(e instanceof MeshidError)) throw e;
    return { error: e, source };
  }
}

test('the socket is created with mode 0600 in a directory created for it, and removed on close', async (t) => {
  const dir = tempDir(t);
  const socketPath = path.join(dir, 'run', 'meshid', 'sds.sock');
  const s = await startTestServer(t, { socketPath });
  t.true(fs.lstatSync(socketPath).isSocket());
  t.is(modeOf(socketPath), 0o600);
  t.true(s.server.serving());
  t.is(s.server.socketPath, socketPath);
  t.deepEqual(fs.readdirSync(path.dirname(socketPath)), ['sds.sock'], 'staging directory left behind');
  await s.server.close();
  t.false(fs.existsSync(socketPath));
});

test('--sds-socket-mode sets another mode', async (t) => {
  const { config } = loadConfig(sdsOptions, { argv: ['--sds-socket', '/x/sds.sock', '--sds-socket-mode', '0660'], env: {} });
  t.is(config.sdsSocketMode, 0o660);
  const s = await startTestServer(t, { config: { sdsSocketMode: config.sdsSocketMode } });
  t.is(modeOf(s.server.socketPath), 0o660);
});

test('socket mode values are parsed strictly', (t) => {
  const parse = (v: string) => loadConfig(sdsOptions, { argv: ['--sds-socket-mode', v], env: {} }).config.sdsSocketMode;
  t.is(parse('600'), 0o600);
  t.is(parse('0o640'), 0o640);
  t.throws(() => parse('rw-------'), { message: /sds-socket-mode \(flag --sds-socket-mode\): expected an octal file mode like 0600/ });
  t.throws(() => parse('0400'), { message: /must give the owner read and write/ });
  t.throws(() => parse('0999'), { message: /expected an octal file mode/ });
  const defaults = loadConfig(sdsOptions, { argv: [], env: {} }).config;
  t.deepEqual(defaults, { sdsSocket: '/var/run/meshid/sds.sock', sdsSocketMode: 0o600, sdsFileDirs: [], namedCert: [] });
});

test('a stale socket from a previous run is replaced', async (t) => {
  const dir = tempDir(t);
  const socketPath = path.join(dir, 'sds.sock');
  // A process that dies without cleaning up leaves its socket file behind.
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.is(r.signal, 'SIGKILL');
  t.true(fs.lstatSync(socketPath).isSocket(), 'no stale socket to test with');
  const s = await startTestServer(t, { socketPath });
  const w = s.client().subscribe('default');
  t.truthy((await w.nextUpdate()).secret.tlsCertificate);
  t.is(modeOf(socketPath), 0o600);
});

test('a socket with a live server behind it is refused, not stolen', async (t) => {
  const dir = tempDir(t);
  const socketPath = path.join(dir, 'sds.sock');
  const other = net.createServer((c) => {
    c.on('error', () => {}); // the probe hangs up at once
    c.end('still here');
  });
  await new Promise<void>((resolve) => other.listen(socketPath, resolve));
  t.teardown(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const { error, source } = await refusal(socketPath);
  t.is(error.code, 'socket_in_use');
  t.is(error.message, `SDS socket ${socketPath} (--sds-socket): another process is serving on this socket; stop it or choose another path`);
  t.is(source.listenerCount(), 0, 'a failed start left a listener on the source');
  const reply = await new Promise<string>((resolve, reject) => {
    const c = net.connect(socketPath);
    let data = '';
    c.on('data', (d) => (data += d));
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
  t.is(reply, 'still here', 'the other server lost its socket');
});

test('a second SDS server on the same path is refused', async (t) => {
  const s = await startTestServer(t);
  const { error } = await refusal(s.server.socketPath);
  t.is(error.code, 'socket_in_use');
  t.truthy(await s.client().subscribe('default').nextUpdate());
});

test('a path that exists and is not a socket is refused and left alone', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'file');
  fs.writeFileSync(file, 'precious');
  const sub = path.join(dir, 'dir');
  fs.mkdirSync(sub);
  const link = path.join(dir, 'link');
  fs.symlinkSync(file, link);
  for (const [p, what] of [[file, 'a regular file'], [sub, 'a directory'], [link, 'a symbolic link']] as const) {
    const { error } = await refusal(p);
    t.is(error.code, 'socket_not_a_socket');
    t.is(error.message, `SDS socket ${p} (--sds-socket): the path exists and is ${what}; refusing to replace it`);
  }
  t.is(fs.readFileSync(file, 'utf8'), 'precious');
  t.true(fs.lstatSync(link).isSymbolicLink());
  t.true(fs.statSync(sub).isDirectory());
});

test('a socket path longer than a Unix socket allows is refused with its length', async (t) => {
  const dir = tempDir(t);
  const { error } = await refusal(path.join(dir, 'x'.repeat(120), 'sds.sock'));
  t.is(error.code, 'socket_path_too_long');
  t.regex(error.message, /Unix sockets allow at most 107/);
});

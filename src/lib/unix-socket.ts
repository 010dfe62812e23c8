/**
 * Putting a gRPC server on a Unix socket path safely:
 *
 * - a stale socket left by a previous run is replaced, but a socket with a live server behind it
 *   is refused (taking it over would silently cut another agent off from its Envoy);
 * - anything else at the path (file, directory, symlink) is refused, never deleted;
 * - the socket never exists at its final path with a wider mode than asked: it is bound inside a
 *   fresh 0700 directory, chmod-ed there, then renamed into place (rename also replaces a stale
 *   socket atomically).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from './clock.js';
import { bindServer } from './grpc-server.js';
import { type ErrorCode, errorMessage, MeshidError } from './errors.js';

/** sun_path holds 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** The socket_* codes of the registry, without their prefix. */
type SocketProblem = { [C in ErrorCode]: C extends `socket_${infer P}` ? P : never }[ErrorCode];

/** Which server's socket, for messages ("SDS socket ... (--sds-socket)"). */
export interface SocketRole {
  /** The flag stem, e.g. "sds" or "authz" for --sds-socket, --authz-socket. */
  readonly name: string;
  /** For messages, e.g. "SDS" or "ext_authz". */
  readonly label: string;
}

export interface BoundSocket {
  readonly path: string;
  /** Removes the socket file if it is still the one we bound (not one another process put there since). */
  remove(): void;
}

function socketError(role: SocketRole, problem: SocketProblem, socketPath: string, detail: string): MeshidError {
  return new MeshidError(`socket_${problem}`, `${role.label} socket ${socketPath} (--${role.name}-socket): ${detail}`);
}

function describeFile(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a socket';
}

type Probe = { state: 'live' } | { state: 'stale' } | { state: 'unknown'; code: string };

/** Whether a server answers on the socket. A connect that neither succeeds nor fails within the bound counts as live. */
function probe(socketPath: string, clock: Clock, boundMs = 1000): Promise<Probe> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    let settled = false;
    const done = (p: Probe) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      sock.destroy();
      resolve(p);
    };
    const timer = clock.setTimer(boundMs, () => done({ state: 'live' }));
    sock.once('connect', () => done({ state: 'live' }));
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? { state: 'stale' } : { state: 'unknown', code: e.code ?? e.message }));
  });
}

/** Whether a live server answers on socketPath; false for no file, a stale socket or one that cannot be checked. */
export async function socketAnswers(socketPath: string, clock: Clock): Promise<boolean> {
  try {
    if (!fs.lstatSync(socketPath).isSocket()) return false;
  } catch {
    return false;
  }
  return (await probe(socketPath, clock)).state === 'live';
}


export async function listenOnUnixSocket(server: grpc.Server, requested: string, mode: number, clock: Clock, role: SocketRole): Promise<BoundSocket> {
  const socketPath = path.resolve(requested);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw socketError(role, 'path_too_long', socketPath, `the path is ${Buffer.byteLength(socketPath)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
  }
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw socketError(role, 'dir', socketPath, `cannot create directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
  }

  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(socketPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw socketError(role, 'stat', socketPath, `cannot inspect: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
  if (existing && !existing.isSocket()) {
    throw socketError(role, 'not_a_socket', socketPath, `the path exists and is ${describeFile(existing)}; refusing to replace it`);
  }
  if (existing) {
    const p = await probe(socketPath, clock);
    if (p.state === 'live') {
      throw socketError(role, 'in_use', socketPath, `another process is serving on this socket; stop it or choose another path`);
    }
    if (p.state === 'unknown') throw socketError(role, 'probe', socketPath, `an existing socket could not be checked (${p.code}); refusing to replace it`);
  }

  const staging = path.join(dir, '.meshid-XXXXXX', 's');
  if (Buffer.byteLength(staging) > MAX_SOCKET_PATH_BYTES) {
    // No room for the staging directory: bind in place and narrow the mode at once.
    if (existing) fs.rmSync(socketPath, { force: true });
    await bindOrExplain(server, socketPath, socketPath, role);
    fs.chmodSync(socketPath, mode);
  } else {
    let tmpDir: string;
    try {
      tmpDir = fs.mkdtempSync(path.join(dir, '.meshid-'));
    } catch (e) {
      throw socketError(role, 'dir', socketPath, `cannot write in ${dir}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
    }
    const tmpSocket = path.join(tmpDir, 's');
    try {
      await bindOrExplain(server, tmpSocket, socketPath, role);
      fs.chmodSync(tmpSocket, mode);
      fs.renameSync(tmpSocket, socketPath);
    } finally {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    }
  }
  const ino = fs.lstatSync(socketPath).ino;
  return {
    path: socketPath,
    remove() {
      try {
        if (fs.lstatSync(socketPath).ino === ino) fs.unlinkSync(socketPath);
      } catch {
        // Already gone.
      }
    },
  };
}

async function bindOrExplain(server: grpc.Server, bindPath: string, socketPath: string, role: SocketRole): Promise<void> {
  try {
    await bindServer(server, `unix:${bindPath}`);
  } catch (e) {
    throw socketError(role, 'bind', socketPath, `cannot listen: ${errorMessage(e)}`);
  }
}

/**
 * Reading file-backed secrets (file-cert:<cert>~<key>, file-root:<path>) and checking that they
 * hold something Envoy can use, so that a bad file is refused here with a message naming the file,
 * not later by Envoy with a NACK that names nothing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { certificatesToPem, parseCertificatesPem } from '../identity/certificate.js';
import { privateKeyPkcs8Pem } from '../identity/keys.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { SecretContent } from './secret-encoding.js';

export interface LoadedFileSecret {
  /** A digest of what is served, so that an unchanged rewrite is not pushed again. */
  readonly version: string;
  readonly content: SecretContent;
}

/** Largest file a file-backed secret may be (README, "Security limits"). */
export const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/**
 * Where file-backed secrets may be read from (--sds-file-dirs): a name pointing anywhere else, at
 * something other than a regular file (a FIFO, /dev/zero, a directory), or at a file over the size
 * cap is refused before a byte is read, and reading never blocks the event loop.
 */
export interface FileSecretPolicy {
  /** Absolute directories; empty: file-backed secrets are refused. */
  readonly allowedDirs: readonly string[];
  /**
   * The paths come from the agent's own configuration (--named-cert), not from a client of the
   * socket: any directory; still regular files only, read asynchronously, within the size cap.
   */
  readonly configuredPaths?: boolean;
  readonly maxBytes?: number;
}

function refused(file: string, what: string, why: string): MeshidError {
  return new MeshidError('sds_file_refused', `refusing ${what} ${file}: ${why}`);
}

function inside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' ? false : !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Whether file (as named, and after resolving symlinks) lies under an allowed directory. */
async function checkAllowed(file: string, what: string, policy: FileSecretPolicy): Promise<string> {
  if (policy.configuredPaths) return path.resolve(file);
  if (policy.allowedDirs.length === 0) throw refused(file, what, 'file-backed secrets are disabled (no --sds-file-dirs)');
  const named = path.resolve(file);
  if (!policy.allowedDirs.some((d) => inside(path.resolve(d), named))) {
    throw refused(file, what, `not under an allowed directory (--sds-file-dirs ${policy.allowedDirs.join(',')})`);
  }
  let real: string;
  try {
    real = await fsp.realpath(named);
  } catch (e) {
    throw readError(e, file, what);
  }
  const dirs = await Promise.all(policy.allowedDirs.map((d) => fsp.realpath(d).catch(() => path.resolve(d))));
  if (!dirs.some((d) => inside(d, real))) throw refused(file, what, `it resolves to ${real}, outside the allowed directories`);
  return real;
}

function readError(e: unknown, file: string, what: string): MeshidError {
  const code = (e as NodeJS.ErrnoException).code;
  return new MeshidError(code === 'ENOENT' ? 'sds_file_missing' : 'sds_file_unreadable',
    `cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? errorMessage(e)}`);
}

/** Reads a regular file under an allowed directory, asynchronously, up to the size cap. */
async function readText(file: string, what: string, policy: FileSecretPolicy): Promise<string> {
  const real = await checkAllowed(file, what, policy);
  const max = policy.maxBytes ?? MAX_SECRET_FILE_BYTES;
  let handle: fsp.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    handle = await fsp.open(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw readError(e, file, what);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isCharacterDevice() ? 'a character device' : st.isSocket() ? 'a socket' : 'not a regular file';
      throw refused(file, what, `it is ${kind}; only regular files are served`);
    }
    if (st.size > max) throw refused(file, what, `${st.size} bytes, over the ${max}-byte limit`);
    const buf = Buffer.alloc(max + 1);
    const { bytesRead } = await handle.read(buf, 0, max + 1, 0);
    if (bytesRead > max) throw refused(file, what, `over the ${max}-byte limit`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (e) {
    if (e instanceof MeshidError) throw e;
    throw readError(e, file, what);
  } finally {
    await handle.close();
  }
}

function invalid(message: string): MeshidError {
  return new MeshidError('sds_file_invalid', message);
}

/** Certificates from a file, with errors that always name the file. */
function parseCertificateFile(text: string, what: string) {
  try {
    return parseCertificatesPem(text, what);
  } catch (e) {
    const message = errorMessage(e);
    throw invalid(message.startsWith(what) ? message : `${what}: ${message}`);
  }
}

function digest(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A certificate chain (leaf first) and the leaf's private key, served as PEM chain + PKCS#8 key. */
export async function loadCertAndKey(certPath: string, keyPath: string, now: () => number, policy: FileSecretPolicy): Promise<LoadedFileSecret> {
  const [certText, keyText] = await Promise.all([readText(certPath, 'certificate file', policy), readText(keyPath, 'key file', policy)]);
  const certs = parseCertificateFile(certText, `certificate file ${certPath}`);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(keyText);
  } catch {
    throw invalid(`key file ${keyPath} does not hold a usable private key (expected an unencrypted PEM key)`);
  }
  const leaf = certs[0]!;
  if (!new crypto.X509Certificate(leaf.der).checkPrivateKey(key)) {
    throw invalid(`key file ${keyPath} does not match the certificate in ${certPath}`);
  }
  if (leaf.notAfter.getTime() <= now()) {
    throw invalid(`certificate file ${certPath} expired at ${leaf.notAfter.toISOString()}`);
  }
  const chainPem = certificatesToPem(certs);
  // The key matches the leaf, so the chain alone identifies the content; no digest of key material.
  return { version: digest(chainPem), content: { type: 'tls_certificate', certificateChainPem: chainPem, privateKeyPem: privateKeyPkcs8Pem(key) } };
}

/** One or more trusted certificates, served as a validation context. */
export async function loadRoots(file: string, policy: FileSecretPolicy): Promise<LoadedFileSecret> {
  const text = await readText(file, 'root file', policy);
  const certs = parseCertificateFile(text, `root file ${file}`);
  const pem = certificatesToPem(certs);
  return { version: digest(pem), content: { type: 'validation_context', trustedCaPem: pem } };
}

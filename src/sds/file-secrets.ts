/**
 * Reading file-backed secrets (file-cert:<cert>~<key>, file-root:<path>) and checking that they
 * hold something Envoy can use, so that a bad file is refused here with a message naming the file,
 * not later by Envoy with a NACK that names nothing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { certificatesToPem, parseCertificatesPem } from '../identity/certificate.js';
import { privateKeyPkcs8Pem } from '../identity/keys.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { SecretContent } from './secret-encoding.js';

export interface LoadedFileSecret {
  /** A digest of what is served, so that an unchanged rewrite is not pushed again. */
  readonly version: string;
  readonly content: SecretContent;
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MeshidError(code === 'ENOENT' ? 'sds_file_missing' : 'sds_file_unreadable',
      `cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? errorMessage(e)}`);
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
export function loadCertAndKey(certPath: string, keyPath: string, now: number): LoadedFileSecret {
  const certText = readText(certPath, 'certificate file');
  const keyText = readText(keyPath, 'key file');
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
  if (leaf.notAfter.getTime() <= now) {
    throw invalid(`certificate file ${certPath} expired at ${leaf.notAfter.toISOString()}`);
  }
  const chainPem = certificatesToPem(certs);
  // The key matches the leaf, so the chain alone identifies the content; no digest of key material.
  return { version: digest(chainPem), content: { type: 'tls_certificate', certificateChainPem: chainPem, privateKeyPem: privateKeyPkcs8Pem(key) } };
}

/** One or more trusted certificates, served as a validation context. */
export function loadRoots(file: string): LoadedFileSecret {
  const text = readText(file, 'root file');
  const certs = parseCertificateFile(text, `root file ${file}`);
  const pem = certificatesToPem(certs);
  return { version: digest(pem), content: { type: 'validation_context', trustedCaPem: pem } };
}

/**
 * The CA's state directory. Either the CA runs as its own root (root-key.pem + root-cert.pem,
 * generated on first start and reused after) or as an intermediate under an operator's root
 * (intermediate-key.pem + intermediate-chain.pem, provided by the operator). Either way the trust
 * bundle (the root) is written to bundle.pem for agents and operators to distribute.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Certificate, parseCertificatesPem } from '../identity/certificate.js';
import { certificatePem } from '../identity/pem.js';
import { encodeDer } from '../identity/der.js';
import { generateKeyPairSync, privateKeyPkcs8Pem } from '../identity/keys.js';
import { caProblem, foreignTrustDomain } from '../identity/svid-verify.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { errorMessage, MeshidError } from '../lib/errors.js';
import type { SigningMaterial } from './authority.js';
import { createRootCertificate } from './ca-certificates.js';

export const STATE_FILES = {
  rootKey: 'root-key.pem',
  rootCert: 'root-cert.pem',
  intermediateKey: 'intermediate-key.pem',
  /** The intermediate's certificate first, then any intermediates above it, the root last. */
  intermediateChain: 'intermediate-chain.pem',
  bundle: 'bundle.pem',
  /** Signs JWT-SVIDs (ES256). */
  jwtSvidKey: 'jwt-svid-key.pem',
} as const;

export interface CaState {
  readonly material: SigningMaterial;
  readonly mode: 'root' | 'intermediate';
  /** Whether this start generated the root. */
  readonly created: boolean;
  readonly bundlePath: string;
  readonly bundlePem: string;
  /** Problems worth a warning (loose file modes), not worth refusing to start. */
  readonly warnings: readonly string[];
}

function stateError(dir: string, detail: string): MeshidError {
  return new MeshidError('ca_state_invalid', `state dir ${dir}: ${detail}`);
}

/** Loads the CA's signing material from dir, creating a root there on first start. */
export function loadOrCreateState(dir: string, trustDomain: string, now: number): CaState {
  const file = (name: string) => path.join(dir, name);
  const exists = (name: string) => fs.existsSync(file(name));
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw stateError(dir, `cannot create the directory (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
  const warnings: string[] = [];
  let material: SigningMaterial;
  let mode: CaState['mode'];
  let created = false;
  if (exists(STATE_FILES.intermediateKey) || exists(STATE_FILES.intermediateChain)) {
    for (const f of [STATE_FILES.intermediateKey, STATE_FILES.intermediateChain]) {
      if (!exists(f)) throw stateError(dir, `${f} is missing (an intermediate CA needs ${STATE_FILES.intermediateKey} and ${STATE_FILES.intermediateChain})`);
    }
    const key = readKey(dir, STATE_FILES.intermediateKey, warnings);
    const chain = readCerts(dir, STATE_FILES.intermediateChain);
    checkIntermediateChain(dir, key, chain, trustDomain, now);
    material = { key, chain };
    mode = 'intermediate';
  } else if (exists(STATE_FILES.rootKey) || exists(STATE_FILES.rootCert)) {
    for (const f of [STATE_FILES.rootKey, STATE_FILES.rootCert]) {
      if (!exists(f)) throw stateError(dir, `${f} is missing while ${f === STATE_FILES.rootKey ? STATE_FILES.rootCert : STATE_FILES.rootKey} exists; restore it or empty the directory to create a new root`);
    }
    const key = readKey(dir, STATE_FILES.rootKey, warnings);
    const certs = readCerts(dir, STATE_FILES.rootCert);
    if (certs.length !== 1) throw stateError(dir, `${STATE_FILES.rootCert} must hold exactly one certificate, found ${certs.length}`);
    checkRoot(dir, key, certs[0]!, trustDomain, now);
    material = { key, chain: certs };
    mode = 'root';
  } else {
    const key = generateKeyPairSync('ec-p256');
    const root = createRootCertificate(trustDomain, key, now);
    writePrivate(dir, STATE_FILES.rootKey, privateKeyPkcs8Pem(key.privateKey));
    writePrivate(dir, STATE_FILES.rootCert, certificatePem(root.der));
    material = { key: key.privateKey, chain: [root] };
    mode = 'root';
    created = true;
  }
  const bundlePem = certificatePem(material.chain[material.chain.length - 1]!.der);
  const bundlePath = file(STATE_FILES.bundle);
  try {
    // Replicas share the state from a read-only mount (a Kubernetes Secret): rewrite only what differs.
    if (readIfExists(bundlePath) !== bundlePem) writeFileAtomically(bundlePath, bundlePem, 0o644);
  } catch (e) {
    throw stateError(dir, `cannot write ${STATE_FILES.bundle} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
  return { material, mode, created, bundlePath, bundlePem, warnings };
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readText(dir: string, name: string): string {
  try {
    return fs.readFileSync(path.join(dir, name), 'utf8');
  } catch (e) {
    throw stateError(dir, `cannot read ${name} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
}

function readKey(dir: string, name: string, warnings: string[]): KeyObject {
  const st = fs.statSync(path.join(dir, name));
  if (st.mode & 0o077) warnings.push(`${path.join(dir, name)} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); it holds the CA's private key`);
  try {
    const key = crypto.createPrivateKey(readText(dir, name));
    if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa') throw new Error(`a ${key.asymmetricKeyType} key cannot sign here`);
    return key;
  } catch (e) {
    if (e instanceof MeshidError) throw e;
    throw stateError(dir, `${name} is not a usable private key (${errorMessage(e)})`);
  }
}

function readCerts(dir: string, name: string): Certificate[] {
  try {
    return parseCertificatesPem(readText(dir, name), name);
  } catch (e) {
    if (e instanceof MeshidError && e.code === 'ca_state_invalid') throw e;
    throw stateError(dir, errorMessage(e));
  }
}

function keyMatches(key: KeyObject, cert: Certificate): boolean {
  const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  return spki.equals(encodeDer(cert.spki));
}

function checkDates(dir: string, name: string, cert: Certificate, now: number): void {
  if (now >= cert.notAfter.getTime()) throw stateError(dir, `${name} expired at ${cert.notAfter.toISOString()}`);
  if (now < cert.notBefore.getTime()) throw stateError(dir, `${name} is not valid before ${cert.notBefore.toISOString()}`);
}

function checkTrustDomain(dir: string, name: string, cert: Certificate, trustDomain: string): void {
  const foreign = foreignTrustDomain(cert, trustDomain);
  if (foreign) {
    throw stateError(dir, `${name} is for ${foreign.uri}, not for the trust domain ${trustDomain} (--trust-domain); use another state dir for another trust domain`);
  }
}

/** The same CA rules agents apply when they verify our chains: a CA they would refuse must not start. */
function checkCaCert(dir: string, name: string, cert: Certificate): void {
  const problem = caProblem(cert);
  if (problem) throw stateError(dir, `${name} cannot issue certificates: it ${problem.detail}`);
}

function checkRoot(dir: string, key: KeyObject, root: Certificate, trustDomain: string, now: number): void {
  const name = STATE_FILES.rootCert;
  if (!keyMatches(key, root)) throw stateError(dir, `${STATE_FILES.rootKey} does not match the public key in ${name}`);
  if (!root.verifySignedBy(root.publicKey())) throw stateError(dir, `${name} is not self-signed`);
  checkCaCert(dir, name, root);
  checkTrustDomain(dir, name, root, trustDomain);
  if (!root.sans.some((n) => n.type === 'uri' && n.value.startsWith('spiffe://'))) throw stateError(dir, `${name} names no trust domain (no spiffe:// URI SAN); it was not created by meshid ca`);
  checkDates(dir, name, root, now);
}

function checkIntermediateChain(dir: string, key: KeyObject, chain: Certificate[], trustDomain: string, now: number): void {
  const name = STATE_FILES.intermediateChain;
  if (chain.length < 2) throw stateError(dir, `${name} must hold the intermediate certificate and its chain up to the root (at least 2 certificates), found ${chain.length}`);
  if (!keyMatches(key, chain[0]!)) throw stateError(dir, `${STATE_FILES.intermediateKey} does not match the first certificate in ${name}`);
  chain.forEach((cert, i) => {
    const what = `${name} certificate ${i + 1}`;
    const issuer = chain[i + 1] ?? cert;
    if (!cert.issuer.equals(issuer.subject) || !cert.verifySignedBy(issuer.publicKey())) {
      throw stateError(dir, i + 1 < chain.length ? `${what} is not issued by certificate ${i + 2}` : `${what} (the last, the root) is not self-signed`);
    }
    checkCaCert(dir, what, cert);
    checkTrustDomain(dir, what, cert, trustDomain);
    checkDates(dir, what, cert, now);
  });
}

function writePrivate(dir: string, name: string, content: string): void {
  try {
    writeFileAtomically(path.join(dir, name), content, 0o600);
  } catch (e) {
    throw stateError(dir, `cannot write ${name} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
}

/** The CA's JWT-SVID signing key (EC P-256), generated on first use and kept in the state dir after. */
export function loadOrCreateJwtSvidKey(dir: string, warnings: string[]): KeyObject {
  if (fs.existsSync(path.join(dir, STATE_FILES.jwtSvidKey))) {
    const key = readKey(dir, STATE_FILES.jwtSvidKey, warnings);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw stateError(dir, `${STATE_FILES.jwtSvidKey} must be an EC P-256 key (JWT-SVIDs are signed ES256)`);
    }
    return key;
  }
  const key = generateKeyPairSync('ec-p256');
  writePrivate(dir, STATE_FILES.jwtSvidKey, privateKeyPkcs8Pem(key.privateKey));
  return key.privateKey;
}

/**
 * Runs the reference CA in-process on an ephemeral port with a temporary state dir, a JWT issuer
 * whose keys it trusts, and static tokens, and hands tests a real client.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { CaClient } from '../../src/ca/client.js';
import { type CaConfig } from '../../src/ca/options.js';
import { type CaDeps, type RunningCa, startCa } from '../../src/ca/server.js';
import { parseCertificate } from '../../src/identity/certificate.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync, type KeyAlgorithm, type KeyPair, privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { decodePem, encodePem } from '../../src/identity/pem.js';
import { type Asn1, der, encodeDer } from '../../src/identity/der.js';
import { basicConstraintsValue, extensionNode, type GeneralName, generalNamesValue } from '../../src/identity/extensions.js';
import { algorithmIdentifier, sign, signatureSchemeFor, spkiNode } from '../../src/identity/keys.js';
import { nameNode } from '../../src/identity/name.js';
import { OID } from '../../src/identity/oids.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { createLogger } from '../../src/observability/logger.js';
import { tempDir } from '../helpers/tmp.js';
import { captureLogs, type LogLine } from '../helpers/logs.js';
export type { LogLine };

export const TD = 'example.org';
export const JWT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const FRONTEND = `spiffe://${TD}/ns/shop/sa/frontend`;
export const BACKEND = `spiffe://${TD}/ns/shop/sa/backend`;
export const STATIC_TOKEN = 'dev-token-frontend-0123456789';

export interface Harness {
  readonly ca: RunningCa;
  readonly client: CaClient;
  readonly dir: string;
  readonly stateDir: string;
  /** The keys behind --jwt-keys. */
  readonly jwtKey: { privateKey: KeyObject; publicKey: KeyObject };
  /** Every JSON log line the CA wrote. */
  readonly logs: Array<Record<string, unknown>>;
  readonly config: CaConfig;
}

export function baseConfig(dir: string, overrides: Partial<CaConfig> = {}): CaConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    trustDomain: TD,
    stateDir: path.join(dir, 'state'),
    ttl: 3_600_000,
    maxTtl: 24 * 3_600_000,
    jwtSvidTtl: 300_000,
    jwtAudience: 'istio-ca',
    san: [],
    issuanceRate: 300,
    issuanceBurst: 100,
    maxConcurrentIssuance: 256,
    shedRetry: 2000,
    crlValidity: 24 * 3_600_000,
    auditLog: undefined,
    jwtKeys: undefined,
    jwtIssuer: undefined,
    staticTokens: undefined,
    ...overrides,
  };
}

export function logCapture(): { stream: Writable; logs: LogLine[] } {
  const { stream, lines } = captureLogs();
  return { stream, logs: lines };
}

export async function startHarness(t: ExecutionContext, overrides: Partial<CaConfig> = {}, deps: CaDeps = {}): Promise<Harness> {
  const dir = tempDir(t, 'meshid-ca-');
  const jwtKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwks = { keys: [{ ...(jwtKey.publicKey.export({ format: 'jwk' }) as object), kid: 'sa-key-1', use: 'sig' }] };
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(jwks));
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), `tokens:\n  ${STATIC_TOKEN}: ${FRONTEND}\n`);
  const config = baseConfig(dir, {
    jwtKeys: path.join(dir, 'jwks.json'),
    jwtIssuer: JWT_ISSUER,
    staticTokens: path.join(dir, 'tokens.yaml'),
    ...overrides,
  });
  const { stream, logs } = logCapture();
  const ca = await startCa(config, { logger: createLogger({ level: 'debug', destination: stream }), ...deps });
  const client = new CaClient({ address: ca.address, caBundlePem: ca.bundlePem, deadlineMs: 5000 });
  t.teardown(async () => {
    client.close();
    await ca.close();
  });
  return { ca, client, dir, stateDir: config.stateDir, jwtKey, logs, config };
}

export interface ServiceAccountClaims {
  sub?: string;
  'kubernetes.io'?: { namespace: string; serviceaccount: { name: string; uid?: string } };
}

/** A projected service-account token signed by key (ES256), valid for an hour unless told. */
export function serviceAccountToken(
  key: KeyObject,
  o: { ns?: string; sa?: string; issuer?: string; audience?: string; expiresAt?: number; kid?: string; claims?: ServiceAccountClaims } = {},
): Promise<string> {
  const ns = o.ns ?? 'shop';
  const sa = o.sa ?? 'frontend';
  const claims = o.claims ?? { sub: `system:serviceaccount:${ns}:${sa}`, 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: 'u-1' } } };
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: o.kid ?? 'sa-key-1' })
    .setIssuer(o.issuer ?? JWT_ISSUER)
    .setAudience(o.audience ?? 'istio-ca')
    .setIssuedAt()
    .setExpirationTime(Math.floor((o.expiresAt ?? Date.now() + 3_600_000) / 1000))
    .sign(key);
}

export function csrFor(uri: string, algorithm: KeyAlgorithm = 'ec-p256'): { pem: string; key: KeyPair } {
  const key = generateKeyPairSync(algorithm);
  return { pem: createCsr(parseSpiffeId(uri), key).pem, key };
}

/** The mTLS credentials a workload holds after issuance: its chain (without the root) and key. */
export function mtlsAuth(chainPem: string[], key: KeyPair): { kind: 'mtls'; certChainPem: string; privateKeyPem: string } {
  return { kind: 'mtls', certChainPem: chainPem.slice(0, -1).join(''), privateKeyPem: privateKeyPkcs8Pem(key.privateKey) };
}

export function leafOf(chainPem: readonly string[]) {
  return parseCertificate(decodePem(chainPem[0]!)[0]!.der);
}

/** A CSR with whatever names and constraints a test needs, signed by signWith (default: its own key). */
export function craftCsr(o: { sans?: GeneralName[]; ca?: boolean; key?: KeyPair; signWith?: KeyObject }): { pem: string; key: KeyPair } {
  const key = o.key ?? generateKeyPairSync('ec-p256');
  const exts: Asn1[] = [];
  if (o.sans && o.sans.length > 0) exts.push(extensionNode(OID.subjectAltName, true, generalNamesValue(o.sans)));
  if (o.ca !== undefined) exts.push(extensionNode(OID.basicConstraints, true, basicConstraintsValue({ ca: o.ca })));
  const info = der.seq([
    der.small(0),
    nameNode([]),
    spkiNode(key.publicKey),
    der.ctx(0, exts.length ? [der.seq([der.oid(OID.extensionRequest), der.set([der.seq(exts)])])] : []),
  ]);
  const signer = o.signWith ?? key.privateKey;
  const scheme = signatureSchemeFor(signer);
  const csr = der.seq([info, algorithmIdentifier(scheme), der.bits(sign(scheme, encodeDer(info), signer))]);
  return { pem: encodePem('CERTIFICATE REQUEST', encodeDer(csr)), key };
}

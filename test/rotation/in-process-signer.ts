/**
 * A CA for tests that really works: it authenticates the caller (a token from its table, or an
 * mTLS chain it issued, checked with node:crypto's X509Certificate, not with the code under
 * test), parses and verifies the CSR, and signs a real leaf under a real root. It can be told to
 * fail in each way a CA fails, records every request, and can rotate its root.
 */
import crypto, { KeyObject, X509Certificate } from 'node:crypto';
import type { CaAuth, CaResult, CertificateSigner } from '../../src/rotation/ca-signer.js';
import type { Clock } from '../../src/lib/clock.js';
import { type ErrorKind, errorMessage } from '../../src/lib/errors.js';
import { grpcStatusOf } from '../../src/lib/grpc-status.js';
import { LeafTemplate } from '../../src/ca/leaf-template.js';
import { parseCertificate, randomSerial } from '../../src/identity/certificate.js';
import { parseCsr } from '../../src/identity/csr.js';
import { type Asn1, encodeDer } from '../../src/identity/der.js';
import { generateKeyPairSync, spkiNode } from '../../src/identity/keys.js';
import { encodePem } from '../../src/identity/pem.js';
import { type Issued, makeIntermediate, makeRoot } from '../helpers/pki.js';

export type SignerMode =
  | { kind: 'ok' }
  /** Answers with this error, as a CA (or the network) would. */
  | { kind: 'fail'; error: ErrorKind; message?: string }
  /** Never answers; the client's deadline (deadlineMs on the clock) ends the call. */
  | { kind: 'hang' }
  /** Never answers at all, as a client without a deadline would behave. */
  | { kind: 'hang-forever' }
  /** Answers OK with a chain that is not certificates. */
  | { kind: 'garbage' }
  /** Issues a real certificate for another identity. */
  | { kind: 'wrong-identity'; spiffeId: string }
  /** Issues a real certificate for another public key. */
  | { kind: 'wrong-key' }
  /** Refuses mTLS callers with PERMISSION_DENIED; tokens still work. */
  | { kind: 'refuse-mtls' };

export interface SignerRequest {
  /** clock.now() when the request arrived. */
  readonly at: number;
  readonly auth: CaAuth['kind'];
  readonly token?: string;
  /** The identity the caller proved, if it did. */
  readonly callerId?: string;
  /** The URI SAN the CSR asked for. */
  readonly csrId?: string;
  /** SHA-256 of the CSR's public key (SPKI DER). */
  readonly keyFingerprint?: string;
  readonly validitySeconds?: number;
  readonly outcome: 'issued' | ErrorKind | 'garbage' | 'hung';
  readonly serial?: string;
}

export interface InProcessSignerOptions {
  readonly trustDomain?: string;
  /** Bearer tokens the CA accepts, and the identity each proves. */
  readonly tokens: Readonly<Record<string, string>>;
  /** Lifetime of issued leaves when the caller asks for none. Default 1 h. */
  readonly ttlMs?: number;
  /** NotBefore back-dating for skew. Default 10 s (SPIRE's). */
  readonly backdateMs?: number;
  /** The "client deadline" that ends a hung call. Default 10 s. */
  readonly deadlineMs?: number;
  /** Issue through an intermediate (chain leaf, intermediate, root). */
  readonly intermediate?: boolean;
}

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;

export class InProcessSigner implements CertificateSigner {
  readonly requests: SignerRequest[] = [];
  mode: SignerMode = { kind: 'ok' };
  private readonly trustDomain: string;
  /** Every root this CA has had; mTLS callers under any of them are accepted (as during a rotation). */
  private readonly roots: Issued[] = [];
  private issuer!: Issued;

  constructor(
    private readonly clock: Clock,
    private readonly options: InProcessSignerOptions,
  ) {
    this.trustDomain = options.trustDomain ?? 'example.org';
    this.rotateRoot();
  }

  /** The root currently issuing. */
  get root(): Issued {
    return this.roots[this.roots.length - 1]!;
  }

  /** Starts issuing under a new root (and a new intermediate, if configured); returns the root. */
  rotateRoot(): Issued {
    const now = this.clock.now();
    const dates = { notBefore: new Date(now - HOUR), notAfter: new Date(now + 10 * YEAR) };
    const root = makeRoot(this.trustDomain, { ...dates, commonName: `test root ${this.roots.length + 1}` });
    this.roots.push(root);
    this.issuer = this.options.intermediate ? makeIntermediate(root, this.trustDomain, dates) : root;
    return root;
  }

  requestsBy(auth: CaAuth['kind']): SignerRequest[] {
    return this.requests.filter((r) => r.auth === auth);
  }

  async createCertificate(csrPem: string, auth: CaAuth, validitySeconds?: number): Promise<CaResult> {
    const at = this.clock.now();
    const base = { at, auth: auth.kind, ...(auth.kind === 'token' ? { token: auth.token } : {}), ...(validitySeconds ? { validitySeconds } : {}) };
    const refuse = (error: ErrorKind, message: string, extra: Partial<SignerRequest> = {}): CaResult => {
      this.requests.push({ ...base, ...extra, outcome: error });
      return { ok: false, kind: error, grpcCode: grpcStatusOf(error), message };
    };
    const mode = this.mode;
    if (mode.kind === 'fail') return refuse(mode.error, mode.message ?? `test CA: ${mode.error}`);
    if (mode.kind === 'hang' || mode.kind === 'hang-forever') {
      this.requests.push({ ...base, outcome: 'hung' });
      if (mode.kind === 'hang-forever') return new Promise<never>(() => {});
      const ms = this.options.deadlineMs ?? 10_000;
      return new Promise((resolve) =>
        this.clock.setTimer(ms, () => resolve({ ok: false, kind: 'deadline_exceeded', grpcCode: grpcStatusOf('deadline_exceeded'), message: 'Deadline exceeded' })),
      );
    }

    // Who is calling.
    let callerId: string;
    if (auth.kind === 'token') {
      const id = this.options.tokens[auth.token];
      if (!id) return refuse('unauthenticated', 'test CA: unknown bearer token');
      callerId = id;
    } else {
      if (mode.kind === 'refuse-mtls') return refuse('permission_denied', 'test CA: mTLS renewal refused');
      const proven = this.mtlsIdentity(auth, at);
      if (typeof proven !== 'string') return refuse('unauthenticated', `test CA: ${proven.error}`);
      callerId = proven;
    }

    // What it asks for.
    let csr;
    try {
      csr = parseCsr(csrPem);
    } catch (e) {
      return refuse('invalid_argument', `test CA: ${errorMessage(e)}`, { callerId });
    }
    const csrUris = csr.sans.flatMap((n) => (n.type === 'uri' ? [n.value] : []));
    const keyFingerprint = fingerprint(csr.spki);
    const seen = { callerId, keyFingerprint, ...(csrUris[0] ? { csrId: csrUris[0] } : {}) };
    if (!csr.verifySignature()) return refuse('invalid_argument', 'test CA: the CSR signature does not verify', seen);
    if (csrUris.length !== 1 || csrUris[0] !== callerId) return refuse('permission_denied', `test CA: the CSR asks for ${csrUris.join(',')}, the caller is ${callerId}`, seen);

    if (mode.kind === 'garbage') {
      this.requests.push({ ...base, ...seen, outcome: 'garbage' });
      return { ok: true, chainPem: ['-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n', 'hello'] };
    }
    const subjectId = mode.kind === 'wrong-identity' ? mode.spiffeId : callerId;
    const spki = mode.kind === 'wrong-key' ? spkiNode(generateKeyPairSync().publicKey) : csr.spki;
    const ttl = validitySeconds ? validitySeconds * 1000 : (this.options.ttlMs ?? HOUR);
    const notAfter = Math.min(at + ttl, this.issuer.cert.notAfter.getTime());
    const leaf = this.issueLeaf(subjectId, spki, new Date(at - (this.options.backdateMs ?? 10_000)), new Date(notAfter));
    const chain = [leaf.pem];
    if (this.issuer !== this.root) chain.push(this.issuer.pem);
    chain.push(this.root.pem);
    this.requests.push({ ...base, ...seen, outcome: 'issued', serial: leaf.serial });
    return { ok: true, chainPem: chain };
  }

  /** What a TLS server does with a client certificate: chain to a root we have, dates, and proof of the key. */
  private mtlsIdentity(auth: Extract<CaAuth, { kind: 'mtls' }>, now: number): string | { error: string } {
    try {
      const pems = auth.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
      const certs = pems.map((p) => new X509Certificate(p));
      const leaf = certs[0];
      if (!leaf) return { error: 'no client certificate' };
      if (!leaf.checkPrivateKey(crypto.createPrivateKey(auth.privateKeyPem))) return { error: 'the key does not match the certificate' };
      for (const c of certs) {
        if (now < Date.parse(c.validFrom) || now > Date.parse(c.validTo)) return { error: 'the client certificate is not valid now' };
      }
      for (let i = 1; i < certs.length; i++) {
        if (!certs[i - 1]!.verify(certs[i]!.publicKey)) return { error: 'broken client chain' };
      }
      const top = certs[certs.length - 1]!;
      const anchored = this.roots.some((r) => top.verify(new X509Certificate(r.der).publicKey));
      if (!anchored) return { error: 'the client certificate is not from this CA' };
      const uris = parseCertificate(leaf.raw).sans.flatMap((n) => (n.type === 'uri' ? [n.value] : []));
      return uris.length === 1 ? uris[0]! : { error: 'the client certificate does not have exactly one URI SAN' };
    } catch (e) {
      return { error: errorMessage(e) };
    }
  }

  /** Leaves are built by the reference CA's own template: only the policy around it is the test's. */
  private issueLeaf(spiffeId: string, spki: Asn1, notBefore: Date, notAfter: Date): { pem: string; serial: string } {
    const serial = randomSerial();
    const der = new LeafTemplate(this.issuer.cert, this.issuer.key.privateKey).build({ serial, spki, keyKind: 'ec', spiffeId, notBefore, notAfter });
    return { pem: encodePem('CERTIFICATE', der), serial: serial.toString('hex') };
  }
}

/** SHA-256 of a SubjectPublicKeyInfo, as the signer records it. */
export function fingerprint(spki: Asn1 | KeyObject): string {
  const der = spki instanceof KeyObject ? spki.export({ type: 'spki', format: 'der' }) : encodeDer(spki);
  return crypto.createHash('sha256').update(der).digest('hex');
}

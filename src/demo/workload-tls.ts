/**
 * A workload's TLS material kept current from SDS, the way Envoy keeps it: the "default"
 * certificate and key and the "ROOTCA" trusted CAs, each from its own SDS stream, applied together
 * whenever either changes. Used by `meshid dev --demo` and by the data-path tests.
 */
import { parseCertificate, parseCertificatesPem } from '../identity/certificate.js';
import type { SdsClient, SecretWatch } from '../sds/client.js';
import { SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../config/defaults.js';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** The peer's SPIFFE ID: the one URI SAN of its leaf, read from the parsed extension. */
export function peerSpiffeId(raw: Buffer | undefined): string | undefined {
  if (!raw?.length) return undefined;
  const uris = parseCertificate(raw).sans.filter((n) => n.type === 'uri');
  return uris.length === 1 ? uris[0]!.value : undefined;
}

export class WorkloadTls {
  private readonly certWatch: SecretWatch;
  private readonly rootWatch: SecretWatch;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private material: TlsMaterial | undefined;

  constructor(sds: SdsClient) {
    this.certWatch = sds.subscribe(SDS_WORKLOAD_SECRET);
    this.rootWatch = sds.subscribe(SDS_ROOT_SECRET);
    this.certWatch.onUpdate(() => this.apply());
    this.rootWatch.onUpdate(() => this.apply());
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    await Promise.all([this.certWatch.waitFor(() => true, timeoutMs), this.rootWatch.waitFor(() => true, timeoutMs)]);
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error('no TLS material yet');
    return this.material;
  }

  /** Serial of the leaf this workload presents now. */
  ownSerial(): string {
    return parseCertificatesPem(this.current().cert, 'own chain')[0]!.serial;
  }

  onChange(listener: (m: TlsMaterial) => void): void {
    this.listeners.add(listener);
  }

  /** Resolves once the versions given are applied. */
  async waitApplied(certVersion: string | undefined, rootVersion: string | undefined): Promise<void> {
    await Promise.all([
      certVersion ? this.certWatch.waitFor((s) => s.version === certVersion) : undefined,
      rootVersion ? this.rootWatch.waitFor((s) => s.version === rootVersion) : undefined,
    ]);
  }

  nacks(): number {
    return this.certWatch.nacks.length + this.rootWatch.nacks.length;
  }

  private apply(): void {
    const cert = this.certWatch.latest();
    const roots = this.rootWatch.latest();
    if (!cert || !roots) return;
    this.material = {
      key: cert.secret.tlsCertificate!.privateKey,
      cert: cert.secret.tlsCertificate!.certificateChain,
      ca: roots.secret.validationContext!.trustedCa,
    };
    for (const l of this.listeners) l(this.material);
  }
}

/**
 * A workload's TLS material kept current from SDS, the way Envoy keeps it: the "default"
 * certificate and key and the "ROOTCA" trusted CAs, each from its own SDS stream, applied together
 * whenever either changes, with the Envoy-like client's NACK counters. Used by the data-path tests.
 */
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { SDS_ROOT_SECRET, SDS_WORKLOAD_SECRET } from '../../src/config/defaults.js';
import type { TlsMaterial, TlsSource } from '../../src/demo/sds-tls.js';
import type { SdsClient, SecretWatch } from './sds-client.js';

export { peerSpiffeId, type TlsMaterial } from '../../src/demo/sds-tls.js';

export class WorkloadTls implements TlsSource {
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

/**
 * TLS for the CA's gRPC server through grpc-js's public certificate-provider credentials
 * (grpc.experimental). They are the only public way to have grpc-js *request* a client
 * certificate without *requiring* one (requestCert: true, rejectUnauthorized: false), which the CA
 * needs: renewing workloads present their SVID, first-time workloads only a bearer token. They
 * also let the serving certificate be replaced on a live server (setSecureContext underneath).
 */
import * as grpc from '@grpc/grpc-js';

type Provider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** Holds the current serving identity and trust bundle, and tells grpc-js when they change. */
export class ServingCertificateProvider implements Provider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private identity: grpc.experimental.IdentityCertificateUpdate | null = null;
  private readonly ca: grpc.experimental.CaCertificateUpdate;

  constructor(bundlePem: string) {
    this.ca = { caCertificate: Buffer.from(bundlePem) };
  }

  setIdentity(certChainPem: string, privateKeyPem: string): void {
    this.identity = { certificate: Buffer.from(certChainPem), privateKey: Buffer.from(privateKeyPem) };
    for (const l of this.identityListeners) l(this.identity);
  }

  // grpc-js registers these listeners before the watcher that applies their updates, so the
  // current values are delivered on the next microtask, once that watcher exists.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener(this.ca));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && this.identity && listener(this.identity));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}

/** Server credentials that request, but do not require, a client certificate chaining to the bundle. */
export function servingCredentials(provider: ServingCertificateProvider): grpc.ServerCredentials {
  // The same provider serves both roles, so the order of the two provider arguments (whose names
  // in grpc-js's typings differ from its implementation) cannot matter.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/**
 * What the SVID manager needs from a CA, declared by the consumer. The real client
 * (src/ca/client.ts) has exactly this shape; the manager depends on the shape, not the module, so
 * tests can drive it with an in-process signer and the rotation code never imports grpc.
 */
import type { ErrorKind } from '../lib/errors.js';

export type CaAuth =
  | { kind: 'token'; token: string }
  | { kind: 'mtls'; certChainPem: string; privateKeyPem: string };

export type CaResult =
  | { ok: true; chainPem: string[] /* leaf first, root last */ }
  | { ok: false; kind: ErrorKind; grpcCode: number; message: string };

export interface CertificateSigner {
  createCertificate(csrPem: string, auth: CaAuth, validitySeconds?: number): Promise<CaResult>;
}

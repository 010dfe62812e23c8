/**
 * What the SVID manager needs from a CA, declared by the consumer. The real client
 * (src/ca/client.ts) has exactly this shape; the manager depends on the shape, not the module, so
 * tests can drive it with an in-process signer and the rotation code never imports grpc. The
 * request and result types are the CA protocol's (type-only: nothing of src/ca loads).
 */
import type { CaAuth, CaCallResult, CaResult } from '../ca/protocol.js';

export type { CaAuth, CaCallResult, CaResult };

export interface CertificateSigner {
  createCertificate(csrPem: string, auth: CaAuth, validitySeconds?: number): Promise<CaResult>;
}

/**
 * Secrets as Envoy receives them, encoded once per content change. A push to N streams then costs
 * N tiny nonce encodings and N buffer concatenations, not N Secret encodings: the DiscoveryResponse
 * is encoded without its nonce once, and each stream appends its own nonce field (protobuf merges
 * concatenated encodings of a message, so base + nonce field decodes as one response).
 */
import { envoyProtos, SECRET_TYPE_URL } from '../envoy/protos.js';

export type SecretContent =
  | { readonly type: 'tls_certificate'; readonly certificateChainPem: string; readonly privateKeyPem: string }
  | { readonly type: 'validation_context'; readonly trustedCaPem: string; readonly crlPem?: string | undefined };

export interface EncodedSecret {
  readonly name: string;
  /** version_info of the responses carrying this content. */
  readonly version: string;
  /** The DiscoveryResponse (version_info, one resource, type_url), without a nonce. */
  readonly responseWithoutNonce: Buffer;
}

function secretMessage(name: string, content: SecretContent): Record<string, unknown> {
  if (content.type === 'tls_certificate') {
    return {
      name,
      tls_certificate: {
        certificate_chain: { inline_bytes: Buffer.from(content.certificateChainPem) },
        private_key: { inline_bytes: Buffer.from(content.privateKeyPem) },
      },
    };
  }
  const crl = content.crlPem ? { crl: { inline_bytes: Buffer.from(content.crlPem) } } : {};
  return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(content.trustedCaPem) }, ...crl } };
}

export function encodeSecret(name: string, version: string, content: SecretContent): EncodedSecret {
  const { Secret, DiscoveryResponse } = envoyProtos();
  const secretBytes = Secret.encode(Secret.fromObject(secretMessage(name, content))).finish();
  const response = DiscoveryResponse.fromObject({
    version_info: version,
    resources: [{ type_url: SECRET_TYPE_URL, value: secretBytes }],
    type_url: SECRET_TYPE_URL,
  });
  return Object.freeze({ name, version, responseWithoutNonce: Buffer.from(DiscoveryResponse.encode(response).finish()) });
}

/** The full DiscoveryResponse bytes for one stream. */
export function responseWithNonce(secret: EncodedSecret, nonce: string): Buffer {
  const { DiscoveryResponse } = envoyProtos();
  const nonceField = DiscoveryResponse.encode({ nonce }).finish();
  return Buffer.concat([secret.responseWithoutNonce, nonceField], secret.responseWithoutNonce.length + nonceField.length);
}

/**
 * Secrets as Envoy receives them, encoded once per content change: the whole DiscoveryResponse,
 * nonce included, so a push to N streams writes the same bytes N times and encodes nothing per
 * stream (the server's response serializer is the identity, see sdsServiceDefinition).
 *
 * The shared nonce is unique per encoding in this process ("s" + a counter), so it is also unique
 * within any one stream as long as the stream is not sent the same encoding twice; a stream that
 * is (it asked for a secret again after a rename, see secret-stream.ts) gets responseWithNonce
 * instead: the response without its nonce plus a nonce field of its own (protobuf merges
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
  /** Orders encodings in this process: a larger seq was encoded later. */
  readonly seq: number;
  /** The nonce of `response`, shared by every stream it is written to. */
  readonly nonce: string;
  /** The complete DiscoveryResponse (version_info, one resource, type_url, nonce). */
  readonly response: Buffer;
  /** The same DiscoveryResponse without a nonce. */
  readonly responseWithoutNonce: Buffer;
}

let encodings = 0;

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
  const responseWithoutNonce = Buffer.from(DiscoveryResponse.encode(response).finish());
  const seq = ++encodings;
  const nonce = `s${seq.toString(36)}`;
  return Object.freeze({ name, version, seq, nonce, response: withNonceField(responseWithoutNonce, nonce), responseWithoutNonce });
}

function withNonceField(responseWithoutNonce: Buffer, nonce: string): Buffer {
  const nonceField = envoyProtos().DiscoveryResponse.encode({ nonce }).finish();
  return Buffer.concat([responseWithoutNonce, nonceField], responseWithoutNonce.length + nonceField.length);
}

/** The full DiscoveryResponse bytes with a nonce of the caller's (for a stream that already had secret.nonce). */
export function responseWithNonce(secret: EncodedSecret, nonce: string): Buffer {
  return withNonceField(secret.responseWithoutNonce, nonce);
}

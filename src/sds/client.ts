/**
 * The Envoy side of SDS, as Envoy speaks it without ADS: one StreamSecrets stream per secret name,
 * the node on the first message only, and every response checked as Envoy checks it (type URL,
 * exactly one resource, the name asked for, a Secret that decodes and holds inline certificate or
 * CA bytes), then ACKed with its version and nonce, or NACKed with error_detail and the version
 * accepted before (Envoy keeps its previous secret). `meshid sds fetch` subscribes through this;
 * the tests' Envoy stand-in (test/helpers/sds-client.ts) checks responses with the same functions.
 */
import * as grpc from '@grpc/grpc-js';
import { type DiscoveryRequest, type DiscoveryResponse__Output, envoyProtos, SECRET_TYPE_URL, type Secret__Output } from '../envoy/protos.js';
import { TO_OBJECT_OPTIONS } from '../lib/proto-services.js';

export interface DecodedSecret {
  readonly name: string;
  readonly tlsCertificate?: { readonly certificateChain: string; readonly privateKey: string };
  /** crl: the PEM CRL (CertificateValidationContext.crl), when the validation context carries one. */
  readonly validationContext?: { readonly trustedCa: string; readonly crl?: string };
}

/** Envoy reports rejected configuration with INTERNAL. */
export const NACK_CODE = 13;

/** A Secret's bytes decoded, or an error worded as Envoy words its rejection. `shallow`: the name only. */
export function decodeSecret(value: Uint8Array | undefined, shallow = false): DecodedSecret {
  const { Secret } = envoyProtos();
  const msg = Secret.toObject(Secret.decode(value ?? Buffer.alloc(0)), TO_OBJECT_OPTIONS) as Secret__Output;
  const name = msg.name ?? '';
  if (shallow) return { name };
  if (msg.tls_certificate) {
    const chain = msg.tls_certificate.certificate_chain?.inline_bytes;
    const key = msg.tls_certificate.private_key?.inline_bytes;
    if (!chain?.length || !key?.length) throw new Error(`secret ${name}: tls_certificate without inline certificate_chain and private_key`);
    return { name, tlsCertificate: { certificateChain: chain.toString(), privateKey: key.toString() } };
  }
  if (msg.validation_context) {
    const ca = msg.validation_context.trusted_ca?.inline_bytes;
    if (!ca?.length) throw new Error(`secret ${name}: validation_context without inline trusted_ca`);
    const crl = msg.validation_context.crl?.inline_bytes;
    return { name, validationContext: { trustedCa: ca.toString(), ...(crl?.length ? { crl: crl.toString() } : {}) } };
  }
  throw new Error(`secret ${name}: neither tls_certificate nor validation_context`);
}

/** Checks a response as Envoy does; returns its version and secret, or throws with Envoy-like wording. */
export function checkSecretResponse(res: DiscoveryResponse__Output, name: string, shallow = false): { version: string; secret: DecodedSecret } {
  if (res.type_url !== SECRET_TYPE_URL) throw new Error(`unexpected type_url ${JSON.stringify(res.type_url)}`);
  const resources = res.resources ?? [];
  if (resources.length !== 1) throw new Error(`Unexpected SDS secrets length: ${resources.length}`);
  if (resources[0]!.type_url !== SECRET_TYPE_URL) throw new Error(`resource has type_url ${JSON.stringify(resources[0]!.type_url)}`);
  const secret = decodeSecret(resources[0]!.value, shallow);
  if (secret.name !== name) throw new Error(`Unexpected SDS secret (expecting ${name}): ${secret.name}`);
  if (!res.version_info) throw new Error('response without version_info');
  return { version: res.version_info, secret };
}

export interface SdsNode {
  readonly id: string;
  readonly cluster: string;
}

/** A gRPC client for one SDS server on a Unix socket, with its own connection. */
export function sdsClient(socketPath: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    // Envoy does not retry SDS calls at the gRPC layer (it reopens the stream).
    'grpc.enable_retries': 0,
    ...options,
  });
}

export interface AcceptedSecret {
  readonly version: string;
  readonly nonce: string;
  readonly secret: DecodedSecret;
}

export interface SecretStreamHandlers {
  /** Content to refuse beyond Envoy's envelope checks: a message NACKs it. */
  check?(secret: DecodedSecret, version: string): string | undefined;
  /** A response accepted; its ACK has been written. */
  accepted(received: AcceptedSecret): void;
  /** A response Envoy would reject; it has been NACKed. */
  rejected(message: string, version: string): void;
  /** The stream is over: its final status (OK after end()). */
  ended(status: grpc.StatusObject): void;
}

export interface SecretStreamCall {
  /** Half-closes the stream after what was written (the last ACK included); the server then ends it. */
  end(): void;
  /** Cancels the stream at once. */
  cancel(): void;
}

/** Opens one StreamSecrets stream for `name`; `version` is the version already held (after a reconnect). */
export function streamSecret(client: grpc.Client, name: string, node: SdsNode, handlers: SecretStreamHandlers, version = ''): SecretStreamCall {
  const method = envoyProtos().sdsService.StreamSecrets;
  const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse__Output>;
  let held = version;
  let ended = false;
  let halfClosed = false;
  const request = (r: DiscoveryRequest) => {
    if (!ended && !halfClosed) call.write({ resource_names: [name], type_url: SECRET_TYPE_URL, ...r });
  };
  call.on('data', (res: DiscoveryResponse__Output) => {
    const nonce = res.nonce ?? '';
    let checked: { version: string; secret: DecodedSecret };
    let problem: string | undefined;
    try {
      if (!nonce) throw new Error('response without nonce');
      checked = checkSecretResponse(res, name);
      problem = handlers.check?.(checked.secret, checked.version);
    } catch (e) {
      problem = (e as Error).message;
    }
    if (problem !== undefined) {
      request({ version_info: held, response_nonce: nonce, error_detail: { code: NACK_CODE, message: problem } });
      handlers.rejected(problem, res.version_info ?? '');
      return;
    }
    held = checked!.version;
    request({ version_info: held, response_nonce: nonce });
    handlers.accepted({ version: held, nonce, secret: checked!.secret });
  });
  // The status event carries the outcome; 'error' only repeats it for non-OK statuses.
  call.on('error', () => {});
  call.on('status', (status: grpc.StatusObject) => {
    if (ended) return;
    ended = true;
    handlers.ended(status);
  });
  // Envoy's first message: the node, the name, the version held (none at first), no nonce.
  request({ node: { id: node.id, cluster: node.cluster }, version_info: version });
  return {
    end: () => {
      if (ended || halfClosed) return;
      halfClosed = true;
      call.end();
    },
    cancel: () => call.cancel(),
  };
}

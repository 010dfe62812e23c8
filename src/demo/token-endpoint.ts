/**
 * The development token endpoint (`meshid dev token-server`, and inside `meshid dev`): an OAuth 2.0
 * token endpoint over HTTPS that authenticates the caller by mutual TLS as RFC 8705 section 2.1.2
 * (tls_client_auth, by subject alternative name: the client's X.509-SVID, verified against the mesh
 * trust bundle, and its SPIFFE ID is the client id) and answers a client_credentials request with
 * an access token bound to that certificate (RFC 8705 section 3: cnf.x5t#S256, the SHA-256
 * thumbprint of the certificate's DER), signed by the dev issuer (dev-issuer.ts).
 *
 *   POST /token   grant_type=client_credentials[&client_id=<spiffe-id>]  (form-encoded)
 *                 200 {"access_token", "token_type": "Bearer", "expires_in"}; errors as RFC 6749 5.2
 *   GET  /jwks    the issuer's JWKS (also at /.well-known/jwks.json), no client certificate needed
 *
 * TLS asks for a client certificate but does not require one (so /jwks is open); /token then
 * requires that OpenSSL verified it against the bundle and repeats the decision with the full
 * X.509-SVID rules at the injected clock. The endpoint's own serving certificate is self-signed for
 * localhost, 127.0.0.1 and ::1, made at each start and written to a file (curl --cacert FILE).
 * Development only.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { HostPort } from '../config/options.js';
import { buildCertificate, type Certificate, parseCertificate, parseCertificatesPem, randomSerial } from '../identity/certificate.js';
import { basicConstraintsValue, extensionNode, extKeyUsageValue, generalNamesValue, keyUsageValue, subjectKeyIdValue } from '../identity/extensions.js';
import { generateKeyPairSync, keyIdentifier, privateKeyPkcs8Pem, spkiNode } from '../identity/keys.js';
import { commonNameAndOrg, nameNode } from '../identity/name.js';
import { OID } from '../identity/oids.js';
import { certificatePem } from '../identity/pem.js';
import { verifyX509Svid } from '../identity/svid-verify.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import type { Clock } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { DevTokenIssuer } from './dev-issuer.js';

/** The audience of dev access tokens unless told otherwise. */
export const DEV_ACCESS_AUDIENCE = 'meshid-dev-api';
export const DEFAULT_ACCESS_TTL_MS = 10 * 60_000;
const MAX_BODY_BYTES = 8 * 1024;
const SERVING_LIFETIME_MS = 7 * 86_400_000;

export interface TokenEndpointOptions {
  readonly issuer: DevTokenIssuer;
  /** The mesh trust bundle (PEM roots) client certificates must chain to. */
  readonly bundlePem: string;
  readonly trustDomain: string;
  readonly listen: HostPort;
  readonly audiences: readonly string[];
  readonly ttlMs: number;
  /** Where the endpoint's serving certificate is written (PEM), for clients to trust. */
  readonly servingCertificateFile: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface RunningTokenEndpoint {
  readonly url: string;
  readonly port: number;
  /** The serving certificate (PEM), also in options.servingCertificateFile. */
  readonly servingCertificatePem: string;
  close(): Promise<void>;
}

type OAuthError = 'invalid_request' | 'invalid_client' | 'unsupported_grant_type';

/** RFC 6749 section 5.2 error response. */
function oauthError(res: ServerResponse, status: number, error: OAuthError, description: string): void {
  json(res, status, { error, error_description: description });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache' });
  res.end(JSON.stringify(body));
}

/** The client's certificate chain as presented (leaf first, without the self-signed root). */
function presentedChain(socket: TLSSocket): Certificate[] {
  const out: Certificate[] = [];
  let c = socket.getPeerCertificate(true) as (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: unknown }) | undefined;
  const seen = new Set<string>();
  while (c && c.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    const issuer = c.issuerCertificate as typeof c | undefined;
    if (issuer && issuer.fingerprint256 === c.fingerprint256 && out.length > 0) break; // the root, from the bundle
    out.push(parseCertificate(c.raw));
    c = issuer;
  }
  return out;
}

export async function startTokenEndpoint(o: TokenEndpointOptions): Promise<RunningTokenEndpoint> {
  const log = o.logger.child({ component: 'dev-token-endpoint' });
  const roots = parseCertificatesPem(o.bundlePem, 'the mesh trust bundle');
  const serving = selfSignedServing(o.clock.now());
  writeFileAtomically(o.servingCertificateFile, serving.certPem, 0o644);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://localhost');
    if (url.pathname === '/jwks' || url.pathname === '/.well-known/jwks.json') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return void json(res, 405, { error: 'method_not_allowed' });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
      return void res.end(o.issuer.jwks());
    }
    if (url.pathname !== '/token') return void json(res, 404, { error: 'not_found', error_description: 'POST /token or GET /jwks' });
    if (req.method !== 'POST') return void oauthError(res, 405, 'invalid_request', 'the token endpoint takes POST');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return void oauthError(res, 400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
    const body = await readBody(req);
    if (body === undefined) return void oauthError(res, 400, 'invalid_request', `the body is over ${MAX_BODY_BYTES} bytes`);
    const params = new URLSearchParams(body);
    for (const [k] of params) {
      if (params.getAll(k).length > 1) return void oauthError(res, 400, 'invalid_request', `parameter ${k} is repeated`);
    }
    const grant = params.get('grant_type');
    if (grant === null) return void oauthError(res, 400, 'invalid_request', 'grant_type is required');
    if (grant !== 'client_credentials') return void oauthError(res, 400, 'unsupported_grant_type', `grant_type ${JSON.stringify(grant)}: only client_credentials`);

    // Client authentication: tls_client_auth with the SVID's URI SAN as the client id.
    const socket = req.socket as TLSSocket;
    const now = o.clock.now();
    if (!socket.getPeerCertificate()?.raw) return void oauthError(res, 401, 'invalid_client', 'no client certificate: tls_client_auth needs an X.509-SVID from the mesh CA');
    if (!socket.authorized) return void oauthError(res, 401, 'invalid_client', `the client certificate does not chain to the mesh trust bundle (${String(socket.authorizationError)})`);
    let clientId: string;
    let leaf: Certificate;
    try {
      const chain = presentedChain(socket);
      const verified = verifyX509Svid(chain, roots, { trustDomain: o.trustDomain, now });
      if (verified.spiffeId.path === '') throw new Error(`${verified.spiffeId.uri} is a trust domain, not a workload`);
      clientId = verified.spiffeId.uri;
      leaf = verified.leaf;
    } catch (e) {
      return void oauthError(res, 401, 'invalid_client', `the client certificate is not a valid X.509-SVID of ${o.trustDomain}: ${errorMessage(e)}`);
    }
    const asked = params.get('client_id');
    if (asked !== null && asked !== clientId) {
      return void oauthError(res, 401, 'invalid_client', `client_id ${JSON.stringify(asked)} is not the certificate's SPIFFE ID ${clientId}`);
    }
    const token = await o.issuer.accessToken(clientId, o.audiences, o.ttlMs, now, leaf.der);
    log.info({ event: 'token_issued', clientId, audiences: o.audiences, serial: leaf.serial, expiresInS: Math.floor(o.ttlMs / 1000) }, `access token for ${clientId}, bound to certificate ${leaf.serial}`);
    json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: Math.floor(o.ttlMs / 1000) });
  };

  const server = https.createServer(
    { key: serving.keyPem, cert: serving.certPem, ca: o.bundlePem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        log.error({ err: errorMessage(e) }, 'token endpoint request failed');
        if (!res.headersSent) json(res, 500, { error: 'server_error' });
        else res.destroy();
      });
    },
  );
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
  return {
    url: `https://${host}:${port}`,
    port,
    servingCertificatePem: serving.certPem,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The body as text, or undefined past MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A self-signed serverAuth certificate for the loopback names (its own trust anchor: cA, keyCertSign). */
function selfSignedServing(now: number): { certPem: string; keyPem: string } {
  const key = generateKeyPairSync('ec-p256');
  const name = nameNode(commonNameAndOrg('meshid dev token endpoint', 'meshid'));
  const spki = spkiNode(key.publicKey);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + SERVING_LIFETIME_MS),
      spki,
      extensions: [
        extensionNode(OID.basicConstraints, true, basicConstraintsValue({ ca: true })),
        extensionNode(OID.keyUsage, true, keyUsageValue(['digitalSignature', 'keyCertSign'])),
        extensionNode(OID.extKeyUsage, false, extKeyUsageValue([OID.serverAuth])),
        extensionNode(OID.subjectKeyIdentifier, false, subjectKeyIdValue(keyIdentifier(spki))),
        extensionNode(OID.subjectAltName, false, generalNamesValue([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }, { type: 'ip', value: '::1' }])),
      ],
    },
    key.privateKey,
  );
  return { certPem: certificatePem(der), keyPem: privateKeyPkcs8Pem(key.privateKey) };
}

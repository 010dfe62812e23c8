/**
 * A small CA for fault tests that really signs, over TLS with a serving certificate from its own
 * root (so an agent given its bundle trusts the connection), and misbehaves on request: it can
 * answer with a chain for another identity, a chain that expired before it was sent, or a chain
 * from another root of the same trust domain (a CA whose key was swapped or stolen), answer
 * UNAVAILABLE (a CA that flaps), or answer only after SLOW_MS (past the agent's deadline). Anything
 * that authenticates is issued for `identity` (the test decides who asks).
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Authority } from '../../src/ca/authority.js';
import { issueServingCertificate } from '../../src/ca/ca-certificates.js';
import { caServiceDefinition, type IstioCertificateRequest__Output, type IstioCertificateResponse } from '../../src/ca/protocol.js';
import { ServingCertificateProvider, servingCredentials } from '../../src/ca/serving-credentials.js';
import { loadOrCreateState } from '../../src/ca/state.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { bindServer } from '../../src/lib/grpc-server.js';

export type RogueMode = 'ok' | 'wrong-identity' | 'expired' | 'other-root' | 'unavailable' | 'slow';

/** How long a 'slow' CA holds its answer. */
export const SLOW_MS = 3000;

export interface RogueCa {
  readonly address: string;
  readonly bundlePath: string;
  mode: RogueMode;
  /** CreateCertificate calls answered, by the mode they were answered in. */
  readonly answered: RogueMode[];
  close(): Promise<void>;
}

const DAY_MS = 24 * 3600_000;

export async function startRogueCa(o: { readonly dir: string; readonly trustDomain: string; readonly identity: string; readonly otherIdentity: string }): Promise<RogueCa> {
  // The root dates from yesterday, so a leaf issued "two hours ago" is inside its validity.
  const state = loadOrCreateState(path.join(o.dir, 'rogue-ca'), o.trustDomain, Date.now() - DAY_MS);
  const authority = new Authority(o.trustDomain, state.material, { defaultTtlMs: 60_000, maxTtlMs: 60_000 });
  const otherRoot = loadOrCreateState(path.join(o.dir, 'rogue-ca-other-root'), o.trustDomain, Date.now() - DAY_MS);
  const otherAuthority = new Authority(o.trustDomain, otherRoot.material, { defaultTtlMs: 60_000, maxTtlMs: 60_000 });
  const provider = new ServingCertificateProvider(state.bundlePem);
  const serving = issueServingCertificate(authority, [], Date.now());
  provider.setIdentity(serving.certChainPem, serving.privateKeyPem);
  const identity = parseSpiffeId(o.identity);
  const other = parseSpiffeId(o.otherIdentity);
  const answered: RogueMode[] = [];
  const server = new grpc.Server();
  const ca: RogueCa = {
    address: '',
    bundlePath: state.bundlePath,
    mode: 'ok',
    answered,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  server.addService(caServiceDefinition(), {
    CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest__Output, IstioCertificateResponse>, callback: grpc.sendUnaryData<IstioCertificateResponse>) => {
      const mode = ca.mode;
      answered.push(mode);
      if (mode === 'unavailable') return callback({ code: grpc.status.UNAVAILABLE, details: 'rogue CA: unavailable on request' });
      if (mode === 'slow') {
        const answer = () => callback(null, { cert_chain: authority.issue({ csrPem: call.request.csr ?? '', identity, now: Date.now() }).chainPem });
        setTimeout(answer, SLOW_MS).unref();
        return;
      }
      try {
        // Another identity: a CSR of its own (the CA would not sign the agent's CSR for a name it does not ask for).
        const csrPem = mode === 'wrong-identity' ? createCsr(other, generateKeyPairSync('ec-p256')).pem : (call.request.csr ?? '');
        const issued = (mode === 'other-root' ? otherAuthority : authority).issue({
          csrPem,
          identity: mode === 'wrong-identity' ? other : identity,
          // Expired: a one-minute leaf issued two hours ago.
          now: mode === 'expired' ? Date.now() - 2 * 3600_000 : Date.now(),
        });
        callback(null, { cert_chain: issued.chainPem });
      } catch (e) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
      }
    },
  });
  const port = await bindServer(server, '127.0.0.1:0', servingCredentials(provider));
  return Object.assign(ca, { address: `127.0.0.1:${port}` });
}

/**
 * The SDS stream state machine under random request / ACK / NACK / reconnect / rotation sequences,
 * against a real SecretCatalog and a test identity source that really signs.
 */
import fc from 'fast-check';
import { envoyProtos, SECRET_TYPE_URL } from '../../src/envoy/protos.js';
import type { MeshidError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { noopSdsMetrics } from '../../src/sds/metrics.js';
import { SecretCatalog, type SecretSubscriber } from '../../src/sds/secret-catalog.js';
import { SecretStream } from '../../src/sds/secret-stream.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeRoot } from '../helpers/pki.js';
import { TestIdentitySource } from '../helpers/test-identity-source.js';
import { fuzz } from './harness.js';

const NAMES = ['default', 'ROOTCA', 'spiffe://example.org', 'spiffe://other.org', 'bogus', 'file-root:'];
type Op =
  | { readonly op: 'request'; readonly stream: number; readonly names: string[]; readonly nonce: 'last' | 'stale' | 'none' | 'random'; readonly nack: boolean; readonly typeUrl: 'ok' | 'empty' | 'wrong'; readonly version: 'sent' | 'none' }
  | { readonly op: 'rotate' | 'add-root' | 'reconnect'; readonly stream: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    op: fc.constant('request' as const),
    stream: fc.nat(2),
    names: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...NAMES).map((n) => [n]) }, { weight: 1, arbitrary: fc.array(fc.constantFrom(...NAMES), { maxLength: 2 }) }),
    nonce: fc.constantFrom('last', 'last', 'stale', 'none', 'random'),
    nack: fc.boolean(),
    typeUrl: fc.constantFrom('ok', 'ok', 'ok', 'empty', 'wrong'),
    version: fc.constantFrom('sent', 'none'),
  }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('rotate' as const, 'add-root' as const, 'reconnect' as const), stream: fc.nat(2) }) },
);

// Signing is the slow part: one root for every run.
const ROOT = makeRoot('example.org');

interface Tracked {
  stream: SecretStream;
  /** The name of the subscription the stream holds (undefined when none, or released). */
  held: string | undefined;
  closed: boolean;
  nonces: string[];
  versions: string[];
  lastNonce: string | undefined;
  nacked: string | undefined;
}

fuzz('sds-stream', 'one resource per response, only for the name subscribed, never after the stream ended, a NACKed version never re-sent, and every live stream ends on the current content', fc.property(
  fc.array(opArb, { minLength: 1, maxLength: 25 }),
  (ops) => {
    const clock = new FakeClock();
    const source = new TestIdentitySource({ clock, root: ROOT });
    const catalog = new SecretCatalog({ source, clock, logger: silentLogger(), metrics: noopSdsMetrics, fileDebounceMs: 0, fileSecrets: { allowedDirs: [] } });
    const { DiscoveryResponse, Secret } = envoyProtos();
    const streams: Tracked[] = [];

    const open = (i: number): Tracked => {
      const tr = {} as Tracked;
      Object.assign(tr, { held: undefined, closed: false, nonces: [], versions: [], lastNonce: undefined, nacked: undefined });
      // The catalog as the stream sees it, recording which subscription it holds.
      const watched = {
        subscribe(name: string, subscriber: SecretSubscriber) {
          const sub = catalog.subscribe(name, subscriber);
          tr.held = name;
          tr.nacked = undefined;
          return { kind: sub.kind, current: () => sub.current(), release: () => { if (tr.held === name) tr.held = undefined; sub.release(); } };
        },
      } as unknown as SecretCatalog;
      tr.stream = new SecretStream({ catalog: watched, logger: silentLogger(), metrics: noopSdsMetrics }, {
        send(buf: Buffer) {
          if (tr.closed) throw new Error(`stream ${i}: a response after the stream ended`);
          const r = DiscoveryResponse.decode(buf) as unknown as { resources: { type_url: string; value: Uint8Array }[]; version_info: string; nonce: string; type_url: string };
          if (r.resources.length !== 1) throw new Error(`stream ${i}: ${r.resources.length} resources in one response`);
          if (r.type_url !== SECRET_TYPE_URL || r.resources[0]!.type_url !== SECRET_TYPE_URL) throw new Error('wrong type URL in a response');
          const secret = Secret.decode(r.resources[0]!.value) as unknown as { name: string };
          if (tr.held === undefined || secret.name !== tr.held) throw new Error(`stream ${i}: a response for ${secret.name}, subscribed to ${tr.held ?? 'nothing'}`);
          if (tr.nonces.includes(r.nonce)) throw new Error(`stream ${i}: nonce ${r.nonce} reused`);
          if (tr.nacked !== undefined && r.version_info === tr.nacked) throw new Error(`stream ${i}: NACKed version ${tr.nacked} sent again`);
          tr.nonces.push(r.nonce);
          tr.versions.push(r.version_info);
          tr.lastNonce = r.nonce;
        },
        fail(_e: MeshidError) {
          tr.closed = true;
        },
      });
      streams[i] = tr;
      return tr;
    };

    for (const op of ops) {
      const tr = streams[op.stream] ?? open(op.stream);
      if (op.op === 'rotate') source.rotate();
      else if (op.op === 'add-root') source.addRoot();
      else if (op.op === 'reconnect') {
        tr.stream.close();
        tr.closed = true;
        open(op.stream);
      } else if (op.op === 'request') {
        const nonce = op.nonce === 'last' ? tr.lastNonce : op.nonce === 'stale' ? tr.nonces[0] : op.nonce === 'random' ? 'zz' : undefined;
        const isNack = op.nack && nonce !== undefined && nonce === tr.lastNonce && tr.held !== undefined;
        const renamed = op.names.length > 0 && (op.names.length !== 1 || op.names[0] !== tr.held);
        if (isNack && !renamed && op.typeUrl !== 'wrong') tr.nacked = tr.versions[tr.versions.length - 1];
        tr.stream.handle({
          type_url: op.typeUrl === 'ok' ? SECRET_TYPE_URL : op.typeUrl === 'wrong' ? 'type.googleapis.com/envoy.config.cluster.v3.Cluster' : '',
          resource_names: op.names,
          response_nonce: nonce ?? '',
          version_info: op.version === 'sent' ? (tr.versions[tr.versions.length - 1] ?? '') : '',
          ...(op.nack ? { error_detail: { code: 3, message: 'rejected by the fuzzer', details: [] } } : {}),
        } as never);
      }
    }
    // Liveness: a live stream subscribed to a served name ends on the current content (unless that content was NACKed).
    const current: Record<string, string | undefined> = {
      default: source.currentSvid()?.version,
      ROOTCA: source.currentBundle()?.version,
      'spiffe://example.org': source.currentBundle()?.version,
    };
    for (const [i, tr] of streams.entries()) {
      if (!tr || tr.closed || tr.held === undefined) continue;
      const want = current[tr.held];
      if (want === undefined || want === tr.nacked) continue;
      const last = tr.versions[tr.versions.length - 1];
      if (last !== want) throw new Error(`stream ${i} on ${tr.held} holds version ${last ?? 'none'}, the current one is ${want}`);
    }
    for (const tr of streams) tr?.stream.close();
    void catalog.close();
    if (catalog.usage().subscribers !== 0) throw new Error('subscriptions left after every stream closed');
  }), { runs: 300 });

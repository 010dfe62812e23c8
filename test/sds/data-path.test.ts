import tls from 'node:tls';
import test from 'ava';
import { makeLeaf, makeRoot } from '../helpers/pki.js';
import { privateKeyPkcs8Pem } from '../../src/identity/keys.js';
import { eventually, startTestServer } from './support.js';
import { WorkloadTls } from '../helpers/workload-tls.js';
import { SidecarClient, SidecarServer } from './tls-sidecar.js';

const SERVER_ID = 'spiffe://example.org/ns/shop/sa/checkout';
const CLIENT_ID = 'spiffe://example.org/ns/shop/sa/frontend';

test('two sidecars keep mutual TLS up through leaf and root rotations: no failed handshake, no lost request', async (t) => {
  const rootA = makeRoot('example.org', { commonName: 'root A' });
  const srv = await startTestServer(t, { identity: { root: rootA, spiffeId: SERVER_ID } });
  const cli = await startTestServer(t, { identity: { root: rootA, spiffeId: CLIENT_ID } });
  const serverSecrets = new WorkloadTls(srv.client());
  const clientSecrets = new WorkloadTls(cli.client());
  await Promise.all([serverSecrets.ready(), clientSecrets.ready()]);
  const server = new SidecarServer(serverSecrets, CLIENT_ID);
  const port = await server.listen();
  t.teardown(() => server.close());
  const client = new SidecarClient(clientSecrets, SERVER_ID, port);

  // Continuous requests, each on a new connection (a new handshake with the contexts of the moment).
  let stop = false;
  let started = 0;
  let ok = 0;
  const failures: string[] = [];
  const serverSerialsSeen = new Set<string>();
  const worker = async () => {
    while (!stop) {
      const n = ++started;
      try {
        serverSerialsSeen.add((await client.request(n)).presented);
        ok++;
      } catch (e) {
        failures.push(`request ${n}: ${(e as Error).message}`);
      }
    }
  };
  const workers = [worker(), worker(), worker()];
  t.teardown(() => {
    stop = true;
  });
  const moreRequests = async (count: number, what: string) => {
    const target = ok + count;
    await eventually(() => ok >= target || failures.length > 0, 10_000, what);
  };

  const rotateLeaves = async (label: string) => {
    const s = srv.source.rotate();
    await serverSecrets.waitApplied(s.version, undefined);
    await eventually(() => serverSerialsSeen.has(s.leaf.cert.serial) || failures.length > 0, 10_000, `${label}: the client to meet the new server leaf`);
    const c = cli.source.rotate();
    await clientSecrets.waitApplied(c.version, undefined);
    await eventually(() => server.clientSerials.has(c.leaf.cert.serial) || failures.length > 0, 10_000, `${label}: the server to meet the new client leaf`);
    await moreRequests(5, `${label}: requests after the rotation`);
  };
  const bundleChange = async (label: string, change: (src: typeof srv.source) => void) => {
    change(srv.source);
    change(cli.source);
    await Promise.all([
      serverSecrets.waitApplied(undefined, srv.source.currentBundle()!.version),
      clientSecrets.waitApplied(undefined, cli.source.currentBundle()!.version),
    ]);
    await moreRequests(5, `${label}: requests after the bundle change`);
  };

  await moreRequests(5, 'first requests');
  for (let i = 1; i <= 3; i++) await rotateLeaves(`leaf rotation ${i}`);

  // Root rotation: add the new root everywhere, re-issue under it, then retire the old root.
  const rootALeaf = clientSecrets.current();
  const rootB = makeRoot('example.org', { commonName: 'root B' });
  await bundleChange('root B added', (src) => src.addRoot(rootB));
  srv.source.issueFrom(rootB);
  cli.source.issueFrom(rootB);
  await rotateLeaves('re-issue under root B');
  await bundleChange('root A removed', (src) => src.removeRoot(rootA));
  await rotateLeaves('leaf rotation under root B only');

  stop = true;
  await Promise.all(workers);
  t.deepEqual(failures, [], 'a request failed');
  t.is(ok, started, 'a request was lost');
  t.deepEqual(server.handshakeErrors, [], 'a handshake failed on the server');
  t.is(server.rejectedPeers, 0);
  t.is(serverSecrets.nacks() + clientSecrets.nacks(), 0);
  t.true(ok >= 50, `only ${ok} requests`);
  t.log(`${ok} requests, ${serverSerialsSeen.size} server leaves and ${server.clientSerials.size} client leaves seen`);
  t.true(serverSerialsSeen.size >= 6 && server.clientSerials.size >= 6, 'not every rotation was exercised');

  // The checks are real: the retired root, a foreign SPIFFE ID and an unexpected server are refused.
  const current = clientSecrets.current();
  await t.throwsAsync(client.request(1_000_001, tls.createSecureContext({ ...rootALeaf, ca: current.ca })));
  await eventually(() => server.handshakeErrors.length === 1, 3000, 'the server to refuse a root A leaf');
  const intruder = makeLeaf(rootB, 'spiffe://example.org/ns/shop/sa/intruder');
  await t.throwsAsync(client.request(1_000_002, tls.createSecureContext({ key: privateKeyPkcs8Pem(intruder.key.privateKey), cert: intruder.pem, ca: current.ca })));
  await eventually(() => server.rejectedPeers === 1, 3000, 'the server to refuse a foreign SPIFFE ID');
  const picky = new SidecarClient(clientSecrets, 'spiffe://example.org/ns/shop/sa/payments', port);
  await t.throwsAsync(picky.request(1_000_003), { message: /server is spiffe:\/\/example.org\/ns\/shop\/sa\/checkout, expected .*payments/ });
});

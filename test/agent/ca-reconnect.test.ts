/**
 * The CA client's channels across a CA outage, watched at the TCP level through a counting relay
 * in front of the real CA: the first request after the CA is back dials at once (grpc-js would
 * otherwise fail it inside its own reconnect backoff), and a channel the client closed leaves no
 * connection behind (grpc-js 1.14 redials once from a closed channel whose dial had failed).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { CaClient } from '../../src/ca/client.js';
import { caOptions } from '../../src/ca/options.js';
import { startCa } from '../../src/ca/server.js';
import { loadConfig } from '../../src/config/load.js';
import { createCsr } from '../../src/identity/csr.js';
import { generateKeyPairSync } from '../../src/identity/keys.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually, ORDERS, ORDERS_TOKEN, TD } from './stand.js';

/** A TCP relay to target that counts the connections it carries; down until listen(). */
class CountingRelay {
  total = 0;
  open = 0;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: number) {}

  async listen(port: number): Promise<number> {
    const server = net.createServer((inbound) => {
      this.total++;
      this.open++;
      const outbound = net.connect(this.target, '127.0.0.1');
      this.sockets.add(inbound).add(outbound);
      inbound.pipe(outbound).pipe(inbound);
      const done = () => {
        if (!this.sockets.delete(inbound)) return;
        this.open--;
        outbound.destroy();
      };
      inbound.on('close', done);
      inbound.on('error', done);
      outbound.on('close', () => inbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

test('after a failed dial, the next request dials the CA at once, and closed channels leave no connection open', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), `tokens:\n  ${ORDERS_TOKEN}: ${ORDERS}\n`);
  const config = loadConfig(caOptions, {
    argv: ['--listen=127.0.0.1:0', `--trust-domain=${TD}`, `--state-dir=${path.join(dir, 'ca')}`, `--static-tokens=${path.join(dir, 'tokens.yaml')}`],
    fileAndEnv: false,
  }).config;
  const ca = await startCa(config);
  t.teardown(() => ca.close());
  const relay = new CountingRelay(ca.port);
  const port = await relay.listen(0);
  await relay.close(); // the CA's address is down
  t.teardown(() => relay.close());

  const client = new CaClient({ address: `127.0.0.1:${port}`, caBundlePem: ca.bundlePem, deadlineMs: 5000 });
  t.teardown(() => client.close());
  const csr = () => createCsr(parseSpiffeId(ORDERS), generateKeyPairSync('ec-p256')).pem;
  const auth = { kind: 'token', token: ORDERS_TOKEN } as const;

  const down = await client.createCertificate(csr(), auth);
  t.like(down, { ok: false, kind: 'unavailable' });
  t.regex((down as { message: string }).message, /ECONNREFUSED/);

  await relay.listen(port); // the CA is reachable again
  const back = await client.createCertificate(csr(), auth);
  t.true(back.ok, (back as { message?: string }).message);
  t.is(relay.total, 1, 'the request after the outage dialed at once');

  client.close();
  // grpc-js's first reconnect backoff is 1 s (±20 %): give the channel that failed to dial time to
  // try again (real time: this is grpc-js's own timer), then no connection may remain.
  await eventually(() => relay.total >= 2, 2500, 'the closed channel to redial').catch(() => t.log('no redial from the closed channel'));
  await eventually(() => relay.open === 0, 2000, 'every connection to close').catch(() => undefined);
  t.is(relay.open, 0, `${relay.open} connection(s) left open by a closed client`);
});

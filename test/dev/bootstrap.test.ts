import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { renderEnvoyBootstrap } from '../../src/cli/dev.js';
import { tempDir } from '../helpers/tmp.js';

test('the dev bootstrap names the dev sockets and the dev trust domain, and leaves DNS names alone', async (t) => {
  const dir = tempDir(t);
  const file = await renderEnvoyBootstrap(dir, '/x/run/sds.sock', '/x/run/authz.sock', 'example.org');
  t.is(file, path.join(dir, 'envoy.yaml'));
  const text = fs.readFileSync(file, 'utf8');
  t.true(text.includes('path: /x/run/sds.sock') && text.includes('path: /x/run/authz.sock'));
  t.false(text.includes('/var/run/meshid/'));
  t.true(text.includes('"spiffe://example.org/"'));
  t.true(text.includes('"spiffe://example.org/ns/shop/sa/orders"'));
  t.false(text.includes('spiffe://cluster.local'));
  t.true(text.includes('orders.shop.svc.cluster.local'), 'DNS names are not SPIFFE IDs');
});

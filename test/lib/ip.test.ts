/** One IP parser: CA --san values and policy ipBlocks agree on every form, with Go's net.ParseIP semantics. */
import test from 'ava';
import { servingName } from '../../src/ca/ca-certificates.js';
import { parseIp as sanBytes } from '../../src/identity/extensions.js';
import { parseCidr, parseIp } from '../../src/lib/ip.js';

const cases: Array<[string, 'v4' | 'v6' | 'invalid']> = [
  ['10.0.0.1', 'v4'],
  ['010.0.0.1', 'invalid'], // leading zero: octal in some parsers, refused by Go since 1.17
  ['::ffff:10.0.0.1', 'v4'], // IPv4-mapped: Go's ParseIP reads it as 10.0.0.1
  ['::ffff:010.0.0.1', 'invalid'],
  ['2001:db8::1', 'v6'],
  ['::1.2.3.4', 'v6'],
  ['fe80::1%eth0', 'invalid'],
  ['1.2.3', 'invalid'],
  ['0x1.2.3.4', 'invalid'],
  [' 10.0.0.1', 'invalid'],
  ['1::2::3', 'invalid'],
];

test('010.0.0.1 and ::ffff:10.0.0.1 are read the same way by CA SAN checks and policy ipBlocks', (t) => {
  for (const [s, kind] of cases) {
    const ip = parseIp(s);
    t.is(ip === undefined ? 'invalid' : ip.v4 ? 'v4' : 'v6', kind, s);
    const block = parseCidr(s);
    t.is('error' in block, kind === 'invalid', `policy ipBlocks ${s}`);
    let san: string;
    try {
      san = servingName(s).type;
    } catch {
      san = 'refused';
    }
    if (kind === 'invalid') t.not(san, 'ip', `CA --san ${s}`);
    else t.is(san, 'ip', `CA --san ${s}`);
  }
  t.throws(() => servingName('010.0.0.1'), { message: /not a valid IP address/ });
  t.deepEqual([...sanBytes('::ffff:10.0.0.1')], [10, 0, 0, 1], 'a mapped address is written as its IPv4 SAN, as Go does');
  t.is(sanBytes('2001:db8::1').length, 16);
  const mapped = parseCidr('::ffff:10.0.0.0/104');
  t.false('error' in mapped);
  if (!('error' in mapped)) t.is(mapped.bits, 8);
});

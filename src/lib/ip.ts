import { isIP } from 'node:net';
/**
 * IPv4/IPv6 addresses and CIDR blocks. Addresses
 * are four 32-bit words; IPv4 and IPv4-mapped IPv6 (::ffff:a.b.c.d) share one form, so a block
 * written as 10.0.0.0/8 also catches a peer that a dual-stack listener reports as ::ffff:10.1.2.3.
 */
export interface IpAddress {
  readonly v4: boolean;
  /** Big-endian words; for IPv4 only words[3] is used. */
  readonly words: readonly [number, number, number, number];
}

export interface CidrBlock {
  readonly v4: boolean;
  readonly words: readonly [number, number, number, number];
  /** Prefix length counted over the address family's own width (0-32 or 0-128). */
  readonly bits: number;
  /** Whether the written address had bits set beyond the prefix (10.0.0.1/8): valid, but a likely typo. */
  readonly hostBitsSet: boolean;
}

/**
 * The one IP address parser of the project (CA --san values and IP SANs, policy ipBlocks and
 * remoteIpBlocks, peer addresses from Envoy). Validity is node:net's isIP, which agrees with Go's
 * net.ParseIP that Istio uses for ipBlocks: no leading zeros in IPv4 ("010.0.0.1" is refused, it
 * reads as octal elsewhere), IPv4-mapped IPv6 ("::ffff:10.0.0.1") accepted and treated as the IPv4
 * address. Zone ids ("fe80::1%eth0") are refused: they have no place in a certificate or a policy.
 */
export function parseIp(s: string): IpAddress | undefined {
  if (s.includes('%')) return undefined;
  const family = isIP(s);
  if (family === 4) return { v4: true, words: [0, 0, 0, v4Number(s)] };
  if (family !== 6) return undefined;
  const w = v6Words(s);
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v4: true, words: [0, 0, 0, w[3]] };
  return { v4: false, words: w };
}

/** The bytes of an IP SAN: 4 for IPv4 and IPv4-mapped addresses (as Go's x509 writes them), else 16. */
export function ipBytes(ip: IpAddress): Buffer {
  const out = Buffer.alloc(ip.v4 ? 4 : 16);
  if (ip.v4) out.writeUInt32BE(ip.words[3], 0);
  else ip.words.forEach((w, i) => out.writeUInt32BE(w, 4 * i));
  return out;
}

/** A dotted quad isIP has accepted. */
function v4Number(s: string): number {
  return s.split('.').reduce((n, part) => n * 256 + Number(part), 0) >>> 0;
}

/** The four words of an IPv6 address isIP has accepted (groups, "::", an embedded dotted quad). */
function v6Words(s: string): [number, number, number, number] {
  const groups = (part: string): number[] =>
    part === '' ? [] : part.split(':').flatMap((p) => (p.includes('.') ? [v4Number(p) >>> 16, v4Number(p) & 0xffff] : [parseInt(p, 16)]));
  const halves = s.split('::');
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  return [0, 1, 2, 3].map((w) => ((all[2 * w]! << 16) | all[2 * w + 1]!) >>> 0) as [number, number, number, number];
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128 block). */
export function parseCidr(s: string): CidrBlock | { readonly error: string } {
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const ip = parseIp(addrText);
  if (!ip) return { error: `${JSON.stringify(s)} is not an IP address or CIDR block` };
  const written6 = addrText.includes(':');
  const width = written6 ? 128 : 32;
  let bits = width;
  if (slash !== -1) {
    const lenText = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > width) {
      return { error: `${JSON.stringify(s)} has an invalid prefix length (0-${width})` };
    }
    bits = Number(lenText);
  }
  // A mapped address written with a v6 prefix length: count the prefix over the v4 part.
  if (ip.v4 && written6) {
    if (bits < 96) return { error: `${JSON.stringify(s)}: an IPv4-mapped block needs a prefix length of at least 96` };
    bits -= 96;
  }
  const masked = mask(ip.words, ip.v4, bits);
  const hostBitsSet = masked.some((w, i) => w !== ip.words[i]);
  return { v4: ip.v4, words: masked, bits, hostBitsSet };
}

function wordMask(bitsInWord: number): number {
  if (bitsInWord <= 0) return 0;
  if (bitsInWord >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bitsInWord)) >>> 0;
}

function mask(words: readonly number[], v4: boolean, bits: number): [number, number, number, number] {
  if (v4) return [0, 0, 0, (words[3]! & wordMask(bits)) >>> 0];
  return [0, 1, 2, 3].map((i) => (words[i]! & wordMask(bits - 32 * i)) >>> 0) as [number, number, number, number];
}

export function cidrContains(block: CidrBlock, ip: IpAddress): boolean {
  if (block.v4 !== ip.v4) return false;
  if (block.v4) return ((ip.words[3] & wordMask(block.bits)) >>> 0) === block.words[3];
  for (let i = 0; i < 4; i++) {
    if (((ip.words[i]! & wordMask(block.bits - 32 * i)) >>> 0) !== block.words[i]) return false;
  }
  return true;
}

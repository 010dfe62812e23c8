/**
 * IPv4/IPv6 addresses and CIDR blocks, parsed without node:net so the engine stays pure. Addresses
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

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(s: string): number | undefined {
  const m = V4_RE.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    // Leading zeros are refused: some parsers read them as octal.
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n >>> 0;
}

function parseV6(s: string): [number, number, number, number] | undefined {
  if (s.includes('%')) return undefined; // zone ids have no place in a policy or a peer address
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // An embedded IPv4 part may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 1 ? 0 : missing).fill(0), ...tail];
  return [0, 1, 2, 3].map((w) => ((all[2 * w]! << 16) | all[2 * w + 1]!) >>> 0) as [number, number, number, number];
}

export function parseIp(s: string): IpAddress | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { v4: true, words: [0, 0, 0, v4] };
  if (!s.includes(':')) return undefined;
  const w = parseV6(s);
  if (!w) return undefined;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v4: true, words: [0, 0, 0, w[3]] };
  return { v4: false, words: w };
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

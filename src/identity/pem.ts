/** PEM armor (RFC 7468): text outside blocks is ignored, as OpenSSL does. */
import { MeshidError, withContext } from '../lib/errors.js';

export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

const BLOCK_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK_RE)) {
    const [, begin, body, end] = m as unknown as [string, string, string, string];
    if (begin !== end) {
      throw new MeshidError('pem_mismatched_label', `PEM block "BEGIN ${begin}" ends with "END ${end}"`);
    }
    const b64 = body.replace(/\s+/g, '');
    if (!BASE64_RE.test(b64) || b64.length % 4 !== 0) {
      throw new MeshidError('pem_bad_base64', `PEM block "${begin}" is not valid base64`);
    }
    blocks.push({ label: begin, der: Buffer.from(b64, 'base64') });
  }
  return blocks;
}

/** All blocks with the given label; throws if there are none or if other labels are present. */
export function decodePemOf(text: string, label: string, what: string): Buffer[] {
  let blocks: PemBlock[];
  try {
    blocks = decodePem(text);
  } catch (e) {
    if (e instanceof MeshidError) throw withContext(e, what);
    throw e;
  }
  if (blocks.length === 0) throw new MeshidError('pem_empty', `${what}: no PEM block found`);
  for (const b of blocks) {
    if (b.label !== label) {
      throw new MeshidError('pem_wrong_label', `${what}: expected "${label}", found "${b.label}"`);
    }
  }
  return blocks.map((b) => b.der);
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
  return `${out}-----END ${label}-----\n`;
}

export const certificatePem = (der: Uint8Array): string => encodePem('CERTIFICATE', der);

/**
 * PKCS#10 certificate signing requests: created by the agent with exactly one URI SAN (the SPIFFE
 * ID) and an empty subject; parsed by the CA, which decides what to sign from who the caller is.
 */
import type { KeyObject } from 'node:crypto';
import { MeshidError } from '../lib/errors.js';
import { type Asn1, childrenOf, decodeDer, der, elementBytes, encodeDer, readBits, readOid, readSmallInt, Tag, TagClass } from './der.js';
import {
  type BasicConstraints,
  type Extension,
  extensionNode,
  findExtension,
  type GeneralName,
  generalNamesValue,
  parseBasicConstraints,
  parseExtensions,
  parseGeneralNames,
} from './extensions.js';
import { algorithmIdentifier, describeKey, importSpki, type KeyInfo, sign, signatureSchemeFor, spkiNode, verifySignature } from './keys.js';
import { isEmptyName, nameNode } from './name.js';
import { OID } from './oids.js';
import { decodePem, encodePem } from './pem.js';
import type { SpiffeId } from './spiffe-id.js';

export interface ParsedCsr {
  readonly der: Buffer;
  readonly subjectEmpty: boolean;
  /** The SubjectPublicKeyInfo node, embedded as-is in the certificate. */
  readonly spki: Asn1;
  readonly publicKey: KeyObject;
  readonly keyInfo: KeyInfo;
  readonly signatureAlgorithm: string;
  /** Extensions from the PKCS#9 extensionRequest attribute. */
  readonly requestedExtensions: readonly Extension[];
  readonly sans: readonly GeneralName[];
  readonly basicConstraints?: BasicConstraints;
  /** Whether the request is signed by the key it carries (proof of possession). */
  verifySignature(): boolean;
}

const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);

/** Accepts one PEM CSR; anything else is a specific invalid_argument error. */
export function parseCsr(pem: string): ParsedCsr {
  return parseCsrDer(csrDerFromPem(pem));
}

function csrDerFromPem(pem: string): Buffer {
  const blocks = decodePem(pem);
  if (blocks.length === 0) throw new MeshidError('csr_not_pem', 'the CSR is not PEM: no "BEGIN CERTIFICATE REQUEST" block');
  if (blocks.length > 1) throw new MeshidError('csr_multiple', `expected one CSR, found ${blocks.length} PEM blocks`);
  const [block] = blocks;
  if (!CSR_LABELS.has(block!.label)) {
    throw new MeshidError('csr_wrong_type', `expected a CERTIFICATE REQUEST, found a PEM "${block!.label}"`);
  }
  return block!.der;
}

function parseCsrDer(csrDer: Buffer): ParsedCsr {
  const what = 'CSR';
  let top: Asn1[];
  try {
    top = childrenOf(decodeDer(csrDer, what), Tag.SEQUENCE, what);
  } catch (e) {
    throw notACsr(e);
  }
  if (top.length !== 3) throw notACsr(new Error('expected CertificationRequestInfo, algorithm and signature'));
  const [info, algNode, sigNode] = top as [Asn1, Asn1, Asn1];
  const fields = childrenOf(info, Tag.SEQUENCE, 'CertificationRequestInfo');
  if (fields.length < 3 || fields.length > 4) throw notACsr(new Error('CertificationRequestInfo has the wrong number of fields'));
  const [versionNode, subject, spki, attrs] = fields as [Asn1, Asn1, Asn1, Asn1 | undefined];
  if (readSmallInt(versionNode, 'CSR version') !== 0) throw notACsr(new Error('version is not v1 (0)'));
  expectNameShape(subject);
  const signatureAlgorithm = readOid(childrenOf(algNode, Tag.SEQUENCE, 'CSR signature algorithm')[0], 'CSR signature algorithm');
  const signature = readBits(sigNode, 'CSR signature');
  const publicKey = importSpki(spki, 'CSR');
  const requestedExtensions = attrs ? readExtensionRequest(attrs) : [];
  const sanExt = findExtension(requestedExtensions, OID.subjectAltName);
  const bcExt = findExtension(requestedExtensions, OID.basicConstraints);
  let verified: boolean | undefined;
  return {
    der: csrDer,
    subjectEmpty: isEmptyName(subject),
    spki,
    publicKey,
    keyInfo: describeKey(publicKey),
    signatureAlgorithm,
    requestedExtensions,
    sans: sanExt ? parseGeneralNames(sanExt.value, 'CSR') : [],
    ...(bcExt ? { basicConstraints: parseBasicConstraints(bcExt.value, 'CSR') } : {}),
    verifySignature() {
      if (verified === undefined) {
        verified = signature.unusedBits === 0 && verifySignature(signatureAlgorithm, elementBytes(csrDer, 0, 'CertificationRequestInfo'), publicKey, signature.bytes);
      }
      return verified;
    },
  };
}

function notACsr(cause: unknown): MeshidError {
  return new MeshidError('csr_malformed', `not a PKCS#10 CSR: ${(cause as Error).message}`, { cause });
}

function expectNameShape(subject: Asn1): void {
  childrenOf(subject, Tag.SEQUENCE, 'CSR subject');
}

/** Reads the [0] attributes; only extensionRequest matters, and it may appear once. */
function readExtensionRequest(attrs: Asn1): Extension[] {
  let found: Extension[] | undefined;
  for (const attr of childrenOf(attrs, 0, 'CSR attributes', TagClass.CONTEXT_SPECIFIC)) {
    const [typeNode, values] = childrenOf(attr, Tag.SEQUENCE, 'CSR attribute');
    if (readOid(typeNode, 'CSR attribute type') !== OID.extensionRequest) continue;
    const set = childrenOf(values, Tag.SET, 'extensionRequest');
    if (found || set.length !== 1) {
      throw new MeshidError('csr_malformed', 'the CSR has more than one extensionRequest');
    }
    found = parseExtensions(set[0]!, 'CSR');
  }
  return found ?? [];
}

/**
 * Builds a CSR for one SPIFFE ID: empty subject, and a critical subjectAltName holding exactly
 * that URI (critical because the subject is empty, as RFC 5280 4.2.1.6 asks).
 */
export function createCsr(id: SpiffeId, key: { privateKey: KeyObject; publicKey: KeyObject }): { pem: string; der: Buffer } {
  const scheme = signatureSchemeFor(key.privateKey);
  const san = extensionNode(OID.subjectAltName, true, generalNamesValue([{ type: 'uri', value: id.uri }]));
  const info = der.seq([
    der.small(0),
    nameNode([]),
    spkiNode(key.publicKey),
    der.ctx(0, [der.seq([der.oid(OID.extensionRequest), der.set([der.seq([san])])])]),
  ]);
  const infoDer = encodeDer(info);
  const csr = der.seq([info, algorithmIdentifier(scheme), der.bits(sign(scheme, infoDer, key.privateKey))]);
  const csrDer = encodeDer(csr);
  return { der: csrDer, pem: encodePem('CERTIFICATE REQUEST', csrDer) };
}


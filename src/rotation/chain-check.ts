/**
 * Path validation of a chain the CA just issued us. INTERIM: this stands in for `verifyX509Svid`
 * (src/identity/svid-verify.ts, written in parallel) and is the one function to replace when it
 * reaches main. It checks what matters before we serve a chain: every signature up to a root we
 * trust, validity dates, CA flags, keyCertSign, path length, and the SPIFFE leaf rules.
 */
import { MeshidError } from '../lib/errors.js';
import type { Certificate } from '../identity/certificate.js';

function untrusted(detail: string): MeshidError {
  return new MeshidError('invalid_argument', 'ca_chain_untrusted', `the issued chain does not verify: ${detail}`);
}

function label(c: Certificate, position: string): string {
  return `${position} (${c.subjectText || 'empty subject'}, serial ${c.serial})`;
}

function checkDates(c: Certificate, what: string, now: number): void {
  if (now < c.notBefore.getTime()) throw untrusted(`${what} is not valid before ${c.notBefore.toISOString()}`);
  if (now > c.notAfter.getTime()) throw untrusted(`${what} expired at ${c.notAfter.toISOString()}`);
}

function checkIssuer(issuer: Certificate, what: string, casBelow: number): void {
  if (issuer.basicConstraints?.ca !== true) throw untrusted(`${what} is not a CA certificate`);
  if (issuer.keyUsage && !issuer.keyUsage.has('keyCertSign')) throw untrusted(`${what} lacks keyCertSign`);
  const pathLen = issuer.basicConstraints.pathLen;
  if (pathLen !== undefined && casBelow > pathLen) throw untrusted(`${what} allows ${pathLen} CAs below it, the chain has ${casBelow}`);
}

function signedBy(child: Certificate, issuer: Certificate): boolean {
  return child.issuer.equals(issuer.subject) && child.verifySignedBy(issuer.publicKey());
}

/**
 * Throws a MeshidError (code ca_chain_untrusted) unless leafAndIntermediates (leaf first) chains
 * to one of roots and satisfies the X.509-SVID leaf rules at time now (epoch ms).
 */
export function verifyIssuedChain(leafAndIntermediates: readonly Certificate[], roots: readonly Certificate[], now: number): void {
  const [leaf] = leafAndIntermediates;
  if (!leaf) throw untrusted('the chain is empty');
  if (leaf.basicConstraints?.ca) throw untrusted('the leaf is a CA certificate');
  if (!leaf.keyUsage?.has('digitalSignature')) throw untrusted('the leaf lacks the digitalSignature key usage');
  if (leaf.keyUsage.has('keyCertSign') || leaf.keyUsage.has('cRLSign')) throw untrusted('the leaf has keyCertSign or cRLSign');
  const uris = leaf.sans.filter((n) => n.type === 'uri');
  if (uris.length !== 1) throw untrusted(`the leaf has ${uris.length} URI SANs, an X.509-SVID has exactly one`);
  leafAndIntermediates.forEach((c, i) => checkDates(c, label(c, i === 0 ? 'the leaf' : `intermediate ${i}`), now));
  for (let i = 1; i < leafAndIntermediates.length; i++) {
    const child = leafAndIntermediates[i - 1]!;
    const issuer = leafAndIntermediates[i]!;
    if (!signedBy(child, issuer)) throw untrusted(`${label(child, `certificate ${i}`)} is not signed by the next one in the chain`);
    checkIssuer(issuer, label(issuer, `intermediate ${i}`), i - 1);
  }
  const top = leafAndIntermediates[leafAndIntermediates.length - 1]!;
  const root = roots.find((r) => signedBy(top, r));
  if (!root) throw untrusted(`no trusted root signed ${label(top, 'the top of the chain')}`);
  checkIssuer(root, label(root, 'the root'), leafAndIntermediates.length - 1);
  checkDates(root, label(root, 'the root'), now);
}

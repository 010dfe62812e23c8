/**
 * The `partners` secret: the mesh bundle plus every partner CA of --partner-cas, one validation
 * context a gateway listener verifies client certificates with, so Envoy refuses a certificate
 * from no trusted CA at the handshake. Pushed again when either side changes.
 */
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { buildPartnerTrust, parsePartnerMapping, type PartnerTrust } from '../../src/authz/partner-cas.js';
import { parseCertificatesPem } from '../../src/identity/certificate.js';
import { makeRoot } from '../helpers/pki.js';
import { startTestServer } from './support.js';

/** A partner CA source as the agent's (partner-cas-file.ts) looks to SDS: current() and subscribe(). */
class Partners {
  private readonly listeners = new Set<() => void>();
  constructor(public trust: PartnerTrust) {}
  current(): PartnerTrust {
    return this.trust;
  }
  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  swap(trust: PartnerTrust): void {
    this.trust = trust;
    for (const l of this.listeners) l();
  }
}

function trustOf(bundles: Record<string, string>): PartnerTrust {
  const yaml = `partners:\n${Object.keys(bundles).map((n) => `  - {name: ${n}, bundle: ${n}.pem, match: [{cn: ${n}-client}]}`).join('\n')}\n`;
  return buildPartnerTrust(parsePartnerMapping(yaml, '/etc/meshid/partners.yaml'), (f) => bundles[f.slice('/etc/meshid/'.length, -'.pem'.length)]!, 'example.org');
}

test('partners: the mesh bundle and every partner CA bundle in one validation context, pushed again when either changes', async (t) => {
  const globex = makeRoot('example.org', { commonName: 'Globex Root CA', sans: [] });
  const initech = makeRoot('example.org', { commonName: 'Initech Root CA', sans: [] });
  const partners = new Partners(trustOf({ globex: globex.pem }));
  const s = await startTestServer(t, { partners });
  const watch = s.client().subscribe('partners');
  const first = await watch.nextUpdate();
  const mesh = s.source.currentBundle()!;
  t.is(first.secret.name, 'partners');
  t.is(first.secret.tlsCertificate, undefined);
  t.is(first.secret.validationContext?.trustedCa, mesh.rootsPem + globex.pem);
  t.deepEqual(parseCertificatesPem(first.secret.validationContext!.trustedCa, 'partners').map((c) => c.subjectText), [parseCertificatesPem(mesh.rootsPem, 'mesh')[0]!.subjectText, 'O=example.org,CN=Globex Root CA']);

  // A partner is onboarded: its CA joins.
  const onboarded = watch.nextUpdate();
  partners.swap(trustOf({ globex: globex.pem, initech: initech.pem }));
  const second = await onboarded;
  t.not(second.version, first.version);
  t.is(second.secret.validationContext?.trustedCa, mesh.rootsPem + globex.pem + initech.pem);
  // The mesh bundle gains a root: the partners secret follows.
  const rotated = watch.nextUpdate();
  s.source.addRoot();
  const third = await rotated;
  t.is(third.secret.validationContext?.trustedCa, s.source.currentBundle()!.rootsPem + globex.pem + initech.pem);
  // The same content again is not resent.
  partners.swap(trustOf({ globex: globex.pem, initech: initech.pem }));
  await new Promise((r) => setTimeout(r, 50));
  t.is(watch.latest()?.version, third.version);
  t.is(s.metrics.responses.get('partners'), 3, 'first, onboarded, root added: nothing for the unchanged swap');
});

test('without --partner-cas the partners secret is refused with NOT_FOUND naming the flag', async (t) => {
  const s = await startTestServer(t);
  const e = (await s.client().fetch('partners').catch((err: grpc.ServiceError) => err)) as grpc.ServiceError;
  t.is(e.code, grpc.status.NOT_FOUND);
  t.regex(e.details, /unknown SDS secret "partners": this agent trusts no partner CAs: start it with --partner-cas FILE/);
});

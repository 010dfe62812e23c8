/**
 * bench:revocation: the time from `meshid ca revoke` (the real CLI, run against the running CA's
 * state directory) to the first ext_authz Check a real `meshid agent` denies with reason revoked,
 * and to the SDS push whose validation context lists the serial, over several runs.
 *
 * Each run issues a partner certificate (`meshid ca partner issue`), sees it allowed, then starts
 * `meshid ca revoke --serial` while Checks with that certificate go to the agent back to back. The
 * baseline, measured in the same run, is the command's own duration (spawn to exit: mostly Node's
 * start-up); the ratio says how much of the end-to-end time is the command itself.
 * Default poll: the agent's long poll (--crl-wait 30 s, answered at once on a new CRL).
 * Last line: one JSON object. RUNS=N (default 7).
 */
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCsr } from '../src/identity/csr.js';
import { generateKeyPairSync } from '../src/identity/keys.js';
import { parseSpiffeId } from '../src/identity/spiffe-id.js';
import { parseCrlPem } from '../src/ca/crl.js';
import { parseCertificatesPem } from '../src/identity/certificate.js';
import { sdsClient, streamSecret } from '../src/sds/client.js';
import { authzClient, checkRequest, metadataOf } from '../test/authz/helpers/authz-client.js';
import { meshid, meshidOk, startGatewayStack, TD } from '../test/e2e/gateway.js';

const RUNS = Math.max(1, Math.min(50, Number(process.env.RUNS ?? 7)));
const POLICY = {
  'allow-partners.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-partners, namespace: edge }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/partner/*"] } }]
`,
};

interface Run {
  readonly commandMs: number;
  readonly denyMs: number;
  readonly sdsMs: number;
  /** From the command's "CRL written" line to the first deny (negative: the deny came first). */
  readonly afterWriteMs: number;
  readonly checks: number;
}

function stats(xs: readonly number[]): { median: number; p90: number; max: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { min: s[0]!, median: at(0.5), p90: at(0.9), max: s[s.length - 1]! };
}

const round = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshid-bench-revocation-'));
  const stack = await startGatewayStack(dir, POLICY);
  const authz = authzClient(`unix:${stack.authzSocket}`);
  const sds = sdsClient(stack.sdsSocket);
  // The validation context as the gateway's Envoy receives it.
  let crlSerials = new Set<string>();
  const crlListeners = new Set<() => void>();
  const stream = streamSecret(sds, 'ROOTCA', { id: 'bench~10.0.0.1~gw~edge.svc', cluster: 'gw' }, {
    accepted: ({ secret }) => {
      const pem = secret.validationContext?.crl;
      crlSerials = pem ? new Set(parseCrlPem(pem, 'ROOTCA crl').revoked.keys()) : new Set();
      for (const l of [...crlListeners]) l();
    },
    rejected: () => {},
    ended: () => {},
  });
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const name = `bench-${i}`;
      const csr = path.join(dir, `${name}.csr`);
      fs.writeFileSync(csr, createCsr(parseSpiffeId(`spiffe://${TD}/partner/${name}`), generateKeyPairSync('ec-p256')).pem);
      await meshidOk(['ca', 'partner', 'issue', '--name', name, '--csr', csr, '--out', dir, ...stack.state]);
      const pem = fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8');
      const serial = parseCertificatesPem(pem, name)[0]!.serial;
      const request = checkRequest({ principal: `spiffe://${TD}/partner/${name}`, certificate: encodeURIComponent(pem), path: '/api/orders' });
      const first = metadataOf(await authz.check(request));
      if (first.decision !== 'allow') throw new Error(`run ${i}: the new certificate is not allowed (${String(first.reason)})`);

      const sdsSeen = new Promise<number>((resolve) => {
        const check = () => {
          if (!crlSerials.has(serial)) return;
          crlListeners.delete(check);
          resolve(performance.now());
        };
        crlListeners.add(check);
      });
      const started = performance.now();
      // When the command reports the CRL written (its stdout line), i.e. the revocation is on disk.
      let writtenAt: number | undefined;
      const command = meshid(['ca', 'revoke', '--serial', serial, ...stack.state], (chunk) => {
        if (writtenAt === undefined && /CRL \d+ written/.test(chunk)) writtenAt = performance.now();
      });
      let checks = 0;
      let deniedAt: number | undefined;
      while (deniedAt === undefined) {
        if (performance.now() - started > 10_000) throw new Error(`run ${i}: no deny within 10 s`);
        const m = metadataOf(await authz.check(request));
        checks++;
        if (m.decision === 'deny') {
          if (m.reason !== 'revoked') throw new Error(`run ${i}: denied for ${String(m.reason)}`);
          deniedAt = performance.now();
        }
      }
      const done = await command;
      if (done.status !== 0) throw new Error(`run ${i}: meshid ca revoke exited ${done.status}: ${done.stderr}`);
      const sdsAt = await Promise.race([sdsSeen, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`run ${i}: no SDS push with the serial`)), 10_000))]);
      const afterWriteMs = deniedAt - (writtenAt ?? deniedAt);
      const run = { commandMs: done.ms, denyMs: deniedAt - started, sdsMs: sdsAt - started, afterWriteMs, checks };
      runs.push(run);
      console.log(`run ${i + 1}/${RUNS}: revoke command ${run.commandMs} ms (spawn to exit); first denied Check ${round(run.denyMs)} ms after spawn; SDS push with the CRL ${round(run.sdsMs)} ms; deny ${round(run.afterWriteMs)} ms after the command printed "CRL written"; ${checks} Checks sent meanwhile`);
    }
  } finally {
    stream.cancel();
    sds.close();
    authz.close();
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const deny = stats(runs.map((r) => r.denyMs));
  const command = stats(runs.map((r) => r.commandMs));
  const sdsPush = stats(runs.map((r) => r.sdsMs));
  const afterWrite = stats(runs.map((r) => r.afterWriteMs));
  const ratio = deny.median / command.median;
  console.log('');
  console.log(`revoke -> first denied Check: median ${round(deny.median)} ms, p90 ${round(deny.p90)} ms, max ${round(deny.max)} ms (goal: under 1000 ms)`);
  console.log(`revoke -> SDS push with the CRL: median ${round(sdsPush.median)} ms, max ${round(sdsPush.max)} ms`);
  console.log(`CRL on disk (the command's "CRL written" line) -> first denied Check: median ${round(afterWrite.median)} ms, max ${round(afterWrite.max)} ms (the CA's watch, the long poll, the agent's verification)`);
  console.log(`baseline, the meshid ca revoke command alone (spawn to exit): median ${round(command.median)} ms, max ${round(command.max)} ms`);
  console.log(`ratio (first deny / command alone, medians): ${ratio.toFixed(2)}`);
  console.log(
    JSON.stringify({
      bench: 'revocation',
      runs: RUNS,
      crlWaitMs: 30_000,
      denyMs: { median: round(deny.median), p90: round(deny.p90), max: round(deny.max), min: round(deny.min) },
      sdsPushMs: { median: round(sdsPush.median), max: round(sdsPush.max) },
      afterCrlWrittenMs: { median: round(afterWrite.median), max: round(afterWrite.max) },
      commandMs: { median: round(command.median), max: round(command.max) },
      ratioDenyToCommand: Number(ratio.toFixed(2)),
      underOneSecondFromSpawn: deny.max < 1000,
      underOneSecondFromCrlWritten: afterWrite.max < 1000,
    }),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

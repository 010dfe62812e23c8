/**
 * `meshid authz check --policy-dir DIR --request FILE`: decides one Envoy CheckRequest (protobuf
 * JSON) exactly as the ext_authz server would, and prints the decision as one JSON object.
 * Exit 0: a decision was made (allow or deny); 2: the policy set is invalid (errors on stderr), or
 * the request or bundle cannot be read.
 */
import fs from 'node:fs';
import { DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { opt } from '../config/options.js';
import { parseTrustBundle } from '../identity/bundle.js';
import type { Certificate } from '../identity/certificate.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { verifyX509Svid } from '../identity/svid-verify.js';
import { decideCheckRequestWithTokens } from '../authz/decide.js';
import { RequestAuthenticator } from '../authz/jwt-verify.js';
import { readJwtRules } from '../authz/server.js';
import { checkRequestFromJson } from '../authz/check-request-json.js';
import type { CertificateCheck } from '../authz/check-request.js';
import { loadPartnerCas } from '../authz/partner-cas-file.js';
import type { PartnerTrust } from '../authz/partner-cas.js';
import { peerCertificateChecker } from '../authz/peer-certificate.js';
import { readPolicyDir } from '../authz/policy-dir.js';
import { buildPolicySet } from '../authz/policy-set.js';
import { decisionView } from '../authz/report.js';
import { formatIssue } from '../authz/validate.js';
import { errorMessage } from '../lib/errors.js';
import { defineCommand } from './command.js';
import { writeDecision } from './decision-output.js';

const EXIT_DECIDED = 0;
const EXIT_UNUSABLE = 2;

export default defineCommand({
  name: 'authz check',
  summary: 'decide one Envoy CheckRequest (protobuf JSON) against a policy directory, as the ext_authz server would',
  details: `Prints one JSON object: decision (allow or deny), reason, policy, rule, audit, dryRun and the
policy revision. With --bundle, a peer certificate in the request is verified as the agent
verifies it against its trust bundle; without, it is only parsed. With --partner-cas, a certificate
from a partner CA is verified and mapped as the agent does. Exit status: 0 a decision was made (allow or deny), 2 the policy set is invalid
(errors on stderr) or the request cannot be read.`,
  fileAndEnv: false,
  options: {
    policyDir: opt.string('policy-dir', { description: 'directory of AuthorizationPolicy YAML files', metavar: 'DIR', required: true }),
    request: opt.string('request', { description: 'CheckRequest in protobuf JSON (camelCase or snake_case); - for stdin', metavar: 'FILE', required: true }),
    bundle: opt.string('bundle', { description: 'PEM trust bundle: verify the peer certificate in the request against it (a failure denies)', metavar: 'FILE' }),
    jwtRules: opt.string('jwt-rules', { description: 'verify the bearer token as the agent does with --jwt-rules (Istio RequestAuthentication jwtRules)', metavar: 'FILE' }),
    jwtAuthnMetadataKey: opt.string('jwt-authn-metadata-key', { description: 'the jwt_authn metadata key holding the payload, as the agent option', metavar: 'KEY' }),
    at: opt.string('at', { description: 'decide as of this time (RFC 3339), for token expiry; default now', metavar: 'TIME' }),
    trustDomain: opt.checked('trust-domain', { description: 'trust domain of --bundle; the peer must belong to it', metavar: 'TD', default: DEFAULT_TRUST_DOMAIN }, parseTrustDomain),
    partnerCas: opt.string('partner-cas', { description: 'partner CA mapping, as the agent option: a peer certificate from a partner CA is verified and mapped to <td>/partner/<name>', metavar: 'FILE' }),
  },
  async run({ config }, io) {
    const read = await readPolicyDir(config.policyDir);
    if (!read.ok) {
      io.stderr.write(`meshid authz check: ${formatIssue(read.error)}\n`);
      return EXIT_UNUSABLE;
    }
    // Compiled as the agent compiles them: principals naming cluster.local stand for --trust-domain.
    const built = buildPolicySet(read.files, config.policyDir, undefined, { trustDomain: config.trustDomain });
    if (!built.ok) {
      for (const e of built.errors) io.stderr.write(`error: ${formatIssue(e)}\n`);
      io.stderr.write(`meshid authz check: ${config.policyDir}: ${built.errors.length} error${built.errors.length === 1 ? '' : 's'}; no decision made\n`);
      return EXIT_UNUSABLE;
    }
    let text: string;
    try {
      text = config.request === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(config.request, 'utf8');
    } catch (e) {
      io.stderr.write(`meshid authz check: cannot read ${config.request}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}\n`);
      return EXIT_UNUSABLE;
    }
    let request;
    try {
      request = checkRequestFromJson(JSON.parse(text) as unknown);
    } catch (e) {
      io.stderr.write(`meshid authz check: ${config.request}: ${errorMessage(e)}\n`);
      return EXIT_UNUSABLE;
    }
    let roots: readonly Certificate[] | undefined;
    if (config.bundle) {
      let pem: string;
      try {
        pem = fs.readFileSync(config.bundle, 'utf8');
      } catch (e) {
        io.stderr.write(`meshid authz check: cannot read ${config.bundle}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}\n`);
        return EXIT_UNUSABLE;
      }
      try {
        roots = parseTrustBundle(config.trustDomain, pem, config.bundle).roots;
      } catch (e) {
        io.stderr.write(`meshid authz check: ${errorMessage(e)}\n`);
        return EXIT_UNUSABLE;
      }
    }
    const at = config.at === undefined ? undefined : Date.parse(config.at);
    if (at !== undefined && !Number.isFinite(at)) {
      io.stderr.write(`meshid authz check: --at ${JSON.stringify(config.at)} is not an RFC 3339 time\n`);
      return EXIT_UNUSABLE;
    }
    let partners: PartnerTrust | undefined;
    try {
      if (config.partnerCas) partners = loadPartnerCas(config.partnerCas, config.trustDomain);
    } catch (e) {
      io.stderr.write(`meshid authz check: ${errorMessage(e)}\n`);
      return EXIT_UNUSABLE;
    }
    const certificates = peerCertificateChecker({
      trustRoots: () => roots,
      verify: verifyX509Svid,
      trustDomain: config.trustDomain,
      now: () => Date.now(),
      ...(partners ? { partners: () => partners } : {}),
    });
    const checkCertificate: CertificateCheck = Object.assign((pem: string) => certificates.check(pem), { required: () => certificates.certificateRequired() });
    let authenticator: RequestAuthenticator | undefined;
    try {
      if (config.jwtRules) authenticator = await RequestAuthenticator.create(readJwtRules(config.jwtRules), { now: () => at ?? Date.now() });
    } catch (e) {
      io.stderr.write(`meshid authz check: ${errorMessage(e)}\n`);
      return EXIT_UNUSABLE;
    }
    const { decision, input, token } = await decideCheckRequestWithTokens(built.set, request, checkCertificate, {
      authenticator,
      metadataKey: config.jwtAuthnMetadataKey,
    });
    const view = {
      ...decisionView(decision),
      // The request principal and, for a bound token, the thumbprint comparison (RFC 8705).
      token: token ?? null,
      principal: input?.principal ?? null,
      certificate: input?.peerCertificate?.status ?? 'absent',
      ...(input?.peerCertificate?.partner ? { partner: input.peerCertificate.partner } : {}),
      request: input ? { method: input.method, host: input.host ?? null, path: input.path } : null,
    };
    writeDecision(io, view);
    return EXIT_DECIDED;
  },
});

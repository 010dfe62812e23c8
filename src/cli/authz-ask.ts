/**
 * `meshid authz ask --socket S | --address HOST:PORT (--request FILE | --path P ...)`: sends one
 * real ext_authz Check to a running agent, as Envoy would, and prints the agent's answer the way
 * `meshid authz check` prints a decision (one JSON object: decision, reason, policy, rule,
 * revision, nearest ALLOW rules on a default deny). Exit 0: the agent answered (allow or deny);
 * 2: the request cannot be read, or the agent did not answer.
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { checkRequestFromJson } from '../authz/check-request-json.js';
import { type CheckRequest, type CheckResponse__Output, envoyProtos } from '../envoy/protos.js';
import { opt } from '../config/options.js';
import { errorMessage } from '../lib/errors.js';
import { protoRoot } from '../lib/proto-services.js';
import { defineCommand } from './command.js';
import { writeDecision } from './decision-output.js';

const EXIT_ANSWERED = 0;
const EXIT_UNUSABLE = 2;

export default defineCommand({
  name: 'authz ask',
  summary: 'send one Check to a running agent (ext_authz) and print its decision',
  details: `The request is a CheckRequest in protobuf JSON (--request, as for authz check) or is built from
--principal, --method, --path, --host and --header K=V. Prints one JSON object as authz check does:
decision, reason, policy, rule, revision, and on a default deny the nearest ALLOW rules. Exit status:
0 the agent answered (allow or deny), 2 the request cannot be read or the agent did not answer.`,
  fileAndEnv: false,
  options: {
    socket: opt.string('socket', { description: "the agent's ext_authz Unix socket (--authz-socket)", metavar: 'PATH' }),
    address: opt.string('address', { description: "the agent's ext_authz TCP address (--authz-listen)", metavar: 'HOST:PORT' }),
    request: opt.string('request', { description: 'CheckRequest in protobuf JSON; - for stdin', metavar: 'FILE' }),
    principal: opt.string('principal', { description: 'the peer principal Envoy would report (spiffe://...)', metavar: 'ID' }),
    method: opt.string('method', { description: 'HTTP method', metavar: 'METHOD', default: 'GET' }),
    path: opt.string('path', { description: 'HTTP path (with query)', metavar: 'PATH', default: '/' }),
    host: opt.string('host', { description: ':authority', metavar: 'HOST', default: 'localhost' }),
    header: opt.list('header', { description: 'a request header, K=V (repeatable)', metavar: 'K=V' }),
    timeout: opt.duration('timeout', { description: 'how long to wait for the answer', default: 5_000, min: 1 }),
  },
  async run({ config }, io) {
    const fail = (msg: string) => {
      io.stderr.write(`meshid authz ask: ${msg}\n`);
      return EXIT_UNUSABLE;
    };
    if ((config.socket === undefined) === (config.address === undefined)) return fail('give exactly one of --socket and --address');
    let request: CheckRequest;
    if (config.request !== undefined) {
      try {
        const text = config.request === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(config.request, 'utf8');
        request = checkRequestFromJson(JSON.parse(text) as unknown);
      } catch (e) {
        return fail(`${config.request}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
      }
    } else {
      const headers: Record<string, string> = {};
      for (const h of config.header ?? []) {
        const eq = h.indexOf('=');
        if (eq <= 0) return fail(`--header ${h}: expected K=V`);
        headers[h.slice(0, eq).toLowerCase()] = h.slice(eq + 1);
      }
      request = {
        attributes: {
          source: config.principal !== undefined ? { principal: config.principal } : {},
          request: { http: { method: config.method, path: config.path, host: config.host, headers } },
        },
      };
    }
    const target = config.socket !== undefined ? `unix:${config.socket}` : config.address!;
    let response: CheckResponse__Output;
    try {
      response = await check(target, request, config.timeout);
    } catch (e) {
      return fail(`${target}: ${errorMessage(e)}`);
    }
    writeDecision(io, viewOf(response));
    return EXIT_ANSWERED;
  },
});

function check(target: string, request: CheckRequest, timeoutMs: number): Promise<CheckResponse__Output> {
  const def = envoyProtos().authzService.Check;
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  return new Promise<CheckResponse__Output>((resolve, reject) => {
    client.makeUnaryRequest(def.path, (v: CheckRequest) => def.requestSerialize(v), (b: Buffer) => def.responseDeserialize(b), request, { deadline: Date.now() + timeoutMs }, (err, value) => {
      client.close();
      if (err || !value) reject(err ?? new Error('no answer'));
      else resolve(value);
    });
  });
}

/** The agent's answer in the shape authz check prints, from the response's dynamic_metadata. */
function viewOf(r: CheckResponse__Output): Record<string, unknown> {
  const m: Record<string, string | number | boolean | undefined> = {};
  for (const [k, v] of Object.entries(r.dynamic_metadata?.fields ?? {})) m[k] = v.stringValue ?? v.numberValue ?? v.boolValue ?? undefined;
  const nearest = typeof m.nearest_allow_rules === 'string' ? m.nearest_allow_rules.split('; ') : undefined;
  return {
    decision: (r.status?.code ?? 0) === 0 ? 'allow' : 'deny',
    reason: m.reason ?? r.status?.message ?? null,
    policy: m.policy ?? null,
    rule: m.rule ?? null,
    revision: m.revision ?? null,
    ...(nearest ? { nearest } : {}),
    decisionId: m.decision_id ?? null,
    grpcStatus: r.status?.code ?? 0,
    ...(r.denied_response ? { httpStatus: httpStatusNumber(r.denied_response.status?.code), body: r.denied_response.body } : {}),
  };
}

/** The decoder gives enum names ("Forbidden"); operators read HTTP statuses as numbers (403). */
function httpStatusNumber(code: string | number | undefined): number | null {
  if (code === undefined) return null;
  if (typeof code === 'number') return code;
  return protoRoot().lookupEnum('envoy.type.v3.StatusCode').values[code] ?? null;
}

/**
 * Development only: a YAML file mapping opaque bearer tokens to SPIFFE IDs, for clusters without
 * a service-account token issuer. Format:
 *
 *   # meshid ca --static-tokens FILE
 *   tokens:
 *     <token>: spiffe://<trust-domain>/<path>
 *
 * Tokens are kept only as SHA-256 digests, so lookups compare digests (no timing signal about
 * the token) and the tokens themselves are not held in memory for longer than the load.
 */
import crypto from 'node:crypto';
import YAML from 'yaml';
import { parseSpiffeId, type SpiffeId } from '../../identity/spiffe-id.js';
import { errorMessage, MeshidError } from '../../lib/errors.js';

export const MIN_STATIC_TOKEN_LENGTH = 8;

export class StaticTokens {
  private constructor(private readonly byDigest: ReadonlyMap<string, SpiffeId>) {}

  /** Parses the file's text; every problem names the entry (by its index, never the token). */
  static parse(text: string, trustDomain: string, source: string): StaticTokens {
    const fail = (detail: string) => new MeshidError('static_tokens_invalid', `${source}: ${detail}`);
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (e) {
      throw fail(`not valid YAML: ${errorMessage(e).split('\n')[0]}`);
    }
    const tokens = (doc as { tokens?: unknown } | null)?.tokens;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof tokens !== 'object' || tokens === null || Array.isArray(tokens)) {
      throw fail('expected a mapping "tokens:" of token: spiffe://... entries');
    }
    const extra = Object.keys(doc).filter((k) => k !== 'tokens');
    if (extra.length > 0) throw fail(`unknown key ${JSON.stringify(extra[0])} (only "tokens")`);
    const byDigest = new Map<string, SpiffeId>();
    Object.entries(tokens as Record<string, unknown>).forEach(([token, value], i) => {
      const entry = `entry ${i + 1}`;
      if (token.length < MIN_STATIC_TOKEN_LENGTH || /\s/.test(token)) {
        throw fail(`${entry}: a token needs at least ${MIN_STATIC_TOKEN_LENGTH} characters and no whitespace`);
      }
      if (typeof value !== 'string') throw fail(`${entry}: the value must be a SPIFFE ID string`);
      let id: SpiffeId;
      try {
        id = parseSpiffeId(value);
      } catch (e) {
        throw fail(`${entry}: ${errorMessage(e)}`);
      }
      if (id.trustDomain !== trustDomain) throw fail(`${entry}: ${id.uri} is not in the trust domain ${trustDomain}`);
      if (id.path === '') throw fail(`${entry}: ${id.uri} is a trust domain, not a workload identity`);
      byDigest.set(digest(token), id);
    });
    return new StaticTokens(byDigest);
  }

  get size(): number {
    return this.byDigest.size;
  }

  lookup(token: string): SpiffeId | undefined {
    return this.byDigest.get(digest(token));
  }
}

function digest(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

/**
 * The agent's metric set, assembled where the agent is wired. Each component declares the hooks it
 * calls (SvidMetrics, SdsMetrics, AuthzMetrics) and imports nothing from here; this module owns the
 * Prometheus definitions and turns hook calls into them, so names, units and labels live in one
 * place. Names follow Prometheus conventions: meshid_ prefix, base units in the name, _total on
 * counters.
 */
import { status } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { AuthzMetrics } from '../authz/metrics.js';
import type { Clock } from '../lib/clock.js';
import { droppedLogLines } from '../observability/logger.js';
import { MetricsRegistry } from '../observability/metrics.js';
import type { SvidMetrics } from '../rotation/metrics.js';
import type { SdsMetrics } from '../sds/metrics.js';

/** "OK", "UNAVAILABLE", ...: the names gRPC itself uses, readable on a dashboard. */
function grpcCodeName(code: number): string {
  return status[code] ?? String(code);
}

const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Bounds of the partner expiry watch: partners labelled, certificates remembered per partner. */
export const PARTNER_LABELS_MAX = 100;
export const PARTNER_CERTIFICATES_MAX = 8;
/** A certificate not presented for this long no longer counts towards its partner's soonest expiry. */
export const PARTNER_SEEN_WINDOW_MS = 24 * 3_600_000;

export class AgentMetrics extends MetricsRegistry {
  private svidExpiresAt: number | undefined;
  /** partner -> certificate SHA-256 -> its notAfter and when it was last presented. */
  private readonly partnerCertificates = new Map<string, Map<string, { notAfter: number; seen: number }>>();
  readonly partnerExpiry: Gauge;
  readonly partnerRemaining: Gauge;
  private readonly clock: Clock;

  readonly svidExpiry = new Gauge({
    name: 'meshid_svid_expiry_timestamp_seconds',
    help: 'Expiry (Unix time) of the X.509-SVID being served; absent while none is',
    registers: [this.registry],
  });
  readonly svidRemaining: Gauge;
  readonly logLinesDropped = new Counter({
    name: 'meshid_log_lines_dropped_total',
    help: 'Log lines dropped because stdout did not keep up and the log buffer (16 MiB) was full',
    registers: [this.registry],
    // The process-wide count, read at scrape time.
    collect() {
      this.reset();
      this.inc(droppedLogLines());
    },
  });
  readonly rotations = new Counter({
    name: 'meshid_svid_rotations_total',
    help: 'SVIDs obtained from the CA (first issuance and renewals), by how the agent authenticated',
    labelNames: ['auth'] as const,
    registers: [this.registry],
  });
  readonly rotationFailures = new Counter({
    name: 'meshid_svid_rotation_failures_total',
    help: 'Failed attempts to obtain an SVID, by error kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly caRequestDuration = new Histogram({
    name: 'meshid_ca_request_duration_seconds',
    help: 'Duration of CreateCertificate calls to the CA, by gRPC status code',
    labelNames: ['code'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly caRequestErrors = new Counter({
    name: 'meshid_ca_request_errors_total',
    help: 'CreateCertificate calls that failed, by gRPC status code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly sdsStreams = new Gauge({
    name: 'meshid_sds_streams',
    help: 'Open SDS streams (Envoy subscriptions)',
    registers: [this.registry],
  });
  readonly sdsResponses = new Counter({
    name: 'meshid_sds_responses_total',
    help: 'SDS responses sent (stream pushes and fetch answers), by secret kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly sdsPushDuration = new Histogram({
    name: 'meshid_sds_push_duration_seconds',
    help: 'Time to hand one secret change to every subscribed stream, by secret kind',
    labelNames: ['kind'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });
  readonly sdsAcks = new Counter({
    name: 'meshid_sds_acks_total',
    help: 'SDS responses Envoy accepted, by secret kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly sdsNacks = new Counter({
    name: 'meshid_sds_nacks_total',
    help: 'SDS responses Envoy rejected (NACK), by secret kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly sdsRejected = new Counter({
    name: 'meshid_sds_rejected_requests_total',
    help: 'SDS streams or fetches refused with a gRPC error, by error code',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly sdsFileReloadFailures = new Counter({
    name: 'meshid_sds_file_reload_failures_total',
    help: 'Watched certificate files that changed into something unusable (the last good content is kept)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly authzDecisions = new Counter({
    name: 'meshid_authz_decisions_total',
    help: 'ext_authz decisions, by outcome, reason and deciding policy ("" for default outcomes)',
    labelNames: ['outcome', 'reason', 'policy'] as const,
    registers: [this.registry],
  });
  readonly authzCheckDuration = new Histogram({
    name: 'meshid_authz_check_duration_seconds',
    help: 'Time the agent spent answering one ext_authz Check',
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly authzDryRunChanged = new Counter({
    name: 'meshid_authz_dry_run_would_change_total',
    help: 'Decisions that dry-run policies would have changed if enforced',
    registers: [this.registry],
  });
  readonly policyReloads = new Counter({
    name: 'meshid_authz_policy_reloads_total',
    help: 'Policy directory changes loaded and swapped in',
    registers: [this.registry],
  });
  readonly policyReloadErrors = new Counter({
    name: 'meshid_authz_policy_reload_errors_total',
    help: 'Policy directory changes rejected as invalid (the last good set stays in force)',
    registers: [this.registry],
  });
  readonly policyRevision = new Gauge({
    name: 'meshid_authz_policy_revision_info',
    help: 'The policy set in force: 1, labelled with its revision',
    labelNames: ['revision'] as const,
    registers: [this.registry],
  });
  readonly policies = new Gauge({
    name: 'meshid_authz_policies',
    help: 'Number of AuthorizationPolicy documents in force',
    registers: [this.registry],
  });
  readonly peerCertificates = new Counter({
    name: 'meshid_authz_peer_certificates_total',
    help: 'Peer certificates Envoy forwarded, by what their check found',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly partnerCasReloads = new Counter({
    name: 'meshid_partner_cas_reloads_total',
    help: 'Changes to the --partner-cas mapping or its bundles: loaded (swapped in) or rejected (the last good mapping stays)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly rateLimitDecisions = new Counter({
    name: 'meshid_authz_rate_limit_decisions_total',
    help: 'Allowed requests a RateLimitPolicy limit applied to, by limit, result (allowed, limited, unavailable) and counter (local, redis, fallback_*)',
    labelNames: ['limit', 'result', 'counter'] as const,
    registers: [this.registry],
  });
  readonly rateLimitEvictions = new Counter({
    name: 'meshid_authz_rate_limit_evictions_total',
    help: 'In-memory rate-limit counters forgotten to stay under --rate-limit-max-keys while they still held state',
    registers: [this.registry],
  });
  readonly requestTokens = new Counter({
    name: 'meshid_authz_request_tokens_total',
    help: 'Requests that carried a JWT, by source (bearer: verified by meshid, jwt_authn: verified by Envoy) and status (valid, invalid, not_bound; bound: valid and certificate-bound)',
    labelNames: ['source', 'status'] as const,
    registers: [this.registry],
  });
  readonly rateLimitStoreUp = new Gauge({
    name: 'meshid_authz_rate_limit_store_up',
    help: 'Whether the shared rate-limit store (Redis) answers: 1 or 0; absent without --rate-limit-redis',
    registers: [this.registry],
  });

  constructor(clock: Clock) {
    super();
    const self = this;
    this.clock = clock;
    this.svidRemaining = new Gauge({
      name: 'meshid_svid_remaining_seconds',
      help: 'Seconds until the served X.509-SVID expires; 0 when none is served',
      registers: [this.registry],
      collect() {
        const at = self.svidExpiresAt;
        this.set(at === undefined ? 0 : Math.max(0, (at - clock.now()) / 1000));
      },
    });
    this.partnerExpiry = new Gauge({
      name: 'meshid_partner_certificate_expiry_timestamp_seconds',
      help: `Soonest notAfter (Unix time) among the certificates each partner presented to ext_authz in the last ${PARTNER_SEEN_WINDOW_MS / 3_600_000} h (at most ${PARTNER_LABELS_MAX} partners)`,
      labelNames: ['partner'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [partner, at] of self.soonestPartnerExpiry(clock.now())) this.labels(partner).set(at / 1000);
      },
    });
    this.partnerRemaining = new Gauge({
      name: 'meshid_partner_certificate_remaining_seconds',
      help: 'Seconds until the soonest-expiring certificate a partner presented (as meshid_partner_certificate_expiry_timestamp_seconds) expires; negative once it has',
      labelNames: ['partner'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const now = clock.now();
        for (const [partner, at] of self.soonestPartnerExpiry(now)) this.labels(partner).set((at - now) / 1000);
      },
    });
  }

  /** The soonest notAfter per partner among certificates presented within the window; stale ones are forgotten. */
  private soonestPartnerExpiry(now: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [partner, certs] of this.partnerCertificates) {
      let soonest = Infinity;
      for (const [sha, c] of certs) {
        if (now - c.seen > PARTNER_SEEN_WINDOW_MS) certs.delete(sha);
        else if (c.notAfter < soonest) soonest = c.notAfter;
      }
      if (certs.size === 0) this.partnerCertificates.delete(partner);
      else out.set(partner, soonest);
    }
    return out;
  }

  /** A partner certificate was presented (every request: two map look-ups). */
  private partnerCertificateSeen(partner: string, sha256: string, notAfter: number, now: number): void {
    let certs = this.partnerCertificates.get(partner);
    if (!certs) {
      if (this.partnerCertificates.size >= PARTNER_LABELS_MAX) return;
      certs = new Map();
      this.partnerCertificates.set(partner, certs);
    }
    const known = certs.get(sha256);
    if (known) {
      known.seen = now;
      return;
    }
    if (certs.size >= PARTNER_CERTIFICATES_MAX) {
      let oldest: string | undefined;
      let at = Infinity;
      for (const [sha, c] of certs) if (c.seen < at) [oldest, at] = [sha, c.seen];
      certs.delete(oldest!);
    }
    certs.set(sha256, { notAfter, seen: now });
  }

  /** The SVID manager's hooks. */
  svidHooks(): SvidMetrics {
    return {
      rotated: (auth) => this.rotations.inc({ auth }),
      rotationFailed: (kind) => this.rotationFailures.inc({ kind }),
      caRequest: (ms, grpcCode) => {
        const code = grpcCodeName(grpcCode);
        this.caRequestDuration.observe({ code }, ms / 1000);
        if (grpcCode !== 0) this.caRequestErrors.inc({ code });
      },
      expiry: (expiresAt) => {
        this.svidExpiresAt = expiresAt;
        if (expiresAt === undefined) this.svidExpiry.reset();
        else this.svidExpiry.set(expiresAt / 1000);
      },
    };
  }

  /** The SDS server's hooks. */
  sdsHooks(): SdsMetrics {
    return {
      streamOpened: () => this.sdsStreams.inc(),
      streamClosed: () => this.sdsStreams.dec(),
      responseSent: (kind) => this.sdsResponses.inc({ kind }),
      pushCompleted: (kind, _streams, ms) => this.sdsPushDuration.observe({ kind }, ms / 1000),
      ackReceived: (kind) => this.sdsAcks.inc({ kind }),
      nackReceived: (kind) => this.sdsNacks.inc({ kind }),
      requestRejected: (reason) => this.sdsRejected.inc({ reason }),
      fileReloadFailed: (kind) => this.sdsFileReloadFailures.inc({ kind }),
    };
  }

  /** The ext_authz service's hooks; decision counters are bound per label set once, off the hot path. */
  authzHooks(): AuthzMetrics {
    const decisions = new Map<string, { inc(): void }>();
    return {
      decision: (outcome, reason, policy, seconds, dryRunChanged) => {
        const key = `${outcome}\0${reason}\0${policy ?? ''}`;
        let counter = decisions.get(key);
        if (!counter) {
          counter = this.authzDecisions.labels(outcome, reason, policy ?? '');
          decisions.set(key, counter);
        }
        counter.inc();
        this.authzCheckDuration.observe(seconds);
        if (dryRunChanged) this.authzDryRunChanged.inc();
      },
      policyReload: (result) => (result === 'loaded' ? this.policyReloads.inc() : this.policyReloadErrors.inc()),
      policySet: (revision, policies) => {
        this.policyRevision.reset();
        this.policyRevision.labels(revision).set(1);
        this.policies.set(policies);
      },
      peerCertificate: (status) => this.peerCertificates.inc({ status }),
      partnerCertificate: (partner, sha256, notAfter) => this.partnerCertificateSeen(partner, sha256, notAfter, this.clock.now()),
      rateLimit: (limit, result, counter) => this.rateLimitDecisions.inc({ limit, result, counter }),
      rateLimitEviction: () => this.rateLimitEvictions.inc(),
      rateLimitStore: (up) => this.rateLimitStoreUp.set(up ? 1 : 0),
      requestToken: (source, status) => this.requestTokens.inc({ source, status }),
    };
  }
}

/**
 * Prometheus metrics (prom-client). Each subsystem declares the hooks it calls (SvidMetrics,
 * SdsMetrics, ...); this module owns the metric definitions and turns hook calls into them, so
 * names, units and labels live in one place. Names follow Prometheus conventions: meshid_ prefix,
 * base units in the name, _total on counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Clock } from '../lib/clock.js';
import type { SvidMetrics } from '../rotation/metrics.js';

const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class AgentMetrics {
  readonly registry = new Registry();
  private svidExpiresAt: number | undefined;

  readonly svidExpiry = new Gauge({
    name: 'meshid_svid_expiry_timestamp_seconds',
    help: 'Expiry (Unix time) of the X.509-SVID being served; absent while none is',
    registers: [this.registry],
  });
  readonly svidRemaining: Gauge;
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
    help: 'Duration of CreateCertificate calls to the CA, by outcome',
    labelNames: ['outcome'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });

  constructor(clock: Clock, options: { processMetrics?: boolean } = {}) {
    const self = this;
    this.svidRemaining = new Gauge({
      name: 'meshid_svid_remaining_seconds',
      help: 'Seconds until the served X.509-SVID expires; 0 when none is served',
      registers: [this.registry],
      collect() {
        const at = self.svidExpiresAt;
        this.set(at === undefined ? 0 : Math.max(0, (at - clock.now()) / 1000));
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The SVID manager's hooks. */
  svidHooks(): SvidMetrics {
    return {
      rotated: (auth) => this.rotations.inc({ auth }),
      rotationFailed: (kind) => this.rotationFailures.inc({ kind }),
      caRequestLatency: (ms, ok) => this.caRequestDuration.observe({ outcome: ok ? 'ok' : 'error' }, ms / 1000),
      expiry: (expiresAt) => {
        this.svidExpiresAt = expiresAt;
        if (expiresAt === undefined) this.svidExpiry.reset();
        else this.svidExpiry.set(expiresAt / 1000);
      },
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * A Prometheus registry with the process metrics (CPU, memory, event loop), and the text the admin
 * endpoint serves. A leaf: it knows no component. The agent's own metric set
 * (src/cli/agent-metrics.ts) registers its meshid_* metrics here and implements the hooks each
 * component declares.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export class MetricsRegistry {
  readonly registry = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

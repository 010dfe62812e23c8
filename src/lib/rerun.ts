/**
 * A task that runs one at a time: a call while it runs asks for one more run after it (however many
 * calls arrive meanwhile), and every caller gets the promise of the run that covers its call. For
 * reloads driven by file events, where an event during a read must not be lost, nor start a
 * second read beside the first.
 */
export interface RerunOptions {
  /** Once true, no new run starts and a pending one is dropped (the owner is closing). */
  readonly stopped?: () => boolean;
  /** Called when a run (with its reruns) has finished, before its callers resume. */
  readonly settled?: () => void;
}

export class Rerun {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly options: RerunOptions = {},
  ) {}

  run(): Promise<void> {
    if (this.options.stopped?.()) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.task();
        } while (this.again && !this.options.stopped?.());
      } finally {
        this.running = undefined;
      }
      this.options.settled?.();
    })();
    return this.running;
  }

  /** Resolves when no run is in progress. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }
}

/**
 * Start-up milestones: a name and the epoch time (ms, sub-ms precision) at which the process first
 * passed it. Recording is one Map lookup, so the marks stay in production code: the agent logs them
 * once at debug level (event "startup_timing") and `npm run bench:start` reads that line to say
 * where start-up time goes. Only the first time a name is reached counts (a renewal does not move
 * "key_generated"), and at most 64 names are kept.
 */
const marks = new Map<string, number>();

export function startupMark(name: string): void {
  if (marks.size < 64 && !marks.has(name)) marks.set(name, performance.timeOrigin + performance.now());
}

/** Every mark so far, with process_start (when this process's clock began: node's own start). */
export function startupMarks(): Record<string, number> {
  return { process_start: performance.timeOrigin, ...Object.fromEntries(marks) };
}

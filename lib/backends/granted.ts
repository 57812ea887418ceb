import type { JobSpec } from '../jobfile/job-spec.js';
import { parseJson } from '../store/job-record.js';
import { layRow, parseRow } from '../store/sweep-rows.js';
import type { TakenJob } from '../store/store.js';
import type { GrantedRun, LaunchContext, Orphan } from './backend.js';

// Granted runs as the starter gets them: a payload taken from Granted_Queue, or a run that a dead
// starter left and recovery found never started, granted again under a new run number.

/**
 * Specs by their JSON text: the jobs of a sweep share one (their sweep's), and thousands of them
 * are parsed once, not once each. Specs are read, never changed (layRow makes a new one).
 */
const specs = new Map<string, JobSpec | null>();
const SPEC_CACHE = 64;

export function specOfText(text: string): JobSpec | null {
  let spec = specs.get(text);
  if (spec === undefined) {
    spec = parseJson(text) as JobSpec | null;
    if (specs.size >= SPEC_CACHE) specs.clear();
    specs.set(text, spec);
  }
  return spec;
}

/** The run a payload describes, or why it cannot be started. */
export function grantedRun(job: TakenJob): GrantedRun | { id: string; run: number; problem: string } {
  let spec = specOfText(job.spec);
  if (!spec || !Array.isArray(spec.order)) return { id: job.id, run: job.run, problem: 'the job record has no usable spec' };
  if (job.sweepRow) {
    // A sweep's job: the spec is its sweep's, and its own row and name go over it.
    const row = parseRow(job.sweepRow.params);
    if (!row) return { id: job.id, run: job.run, problem: 'its row of the sweep is not an object of text values' };
    spec = layRow(spec, row, job.sweepRow.name);
  }
  return { id: job.id, run: job.run, attempt: job.attempt, where: job.where, spec, raw: parseJson(job.raw), taken: job };
}

/**
 * An orphan whose run provably never started gets a new run number (relaunch-1.lua) and is
 * returned to be started now; one cancelled meanwhile is recorded as ended; one that moved on
 * (recorded by another path) is left alone. Returns the run to start, or null.
 */
export async function relaunch(ctx: LaunchContext, orphan: Orphan): Promise<GrantedRun | null> {
  const job = await ctx.store.relaunch(orphan.id, orphan.run);
  if (job === 'cancelled') {
    ctx.recorder.end(orphan.id, orphan.run, { kind: 'failed', exitCode: null, reason: 'cancelled before it started', steps: [], startedAt: null });
    return null;
  }
  if (!job) return null;
  const run = grantedRun(job);
  if ('problem' in run) {
    ctx.recorder.end(run.id, run.run, { kind: 'failed', exitCode: null, reason: `could not start: ${run.problem}`, steps: [], startedAt: null });
    return null;
  }
  ctx.log.info(`JobStarter: job ${orphan.id} run ${orphan.run} was never launched; launching it as run ${run.run}`, { job: orphan.id });
  return run;
}

/** Records that a run could not be started (the fetcher never hears of it: no run log has it). */
export function notStarted(ctx: LaunchContext, id: string, run: number, reason: string): void {
  ctx.recorder.end(id, run, { kind: 'failed', exitCode: 127, reason: `could not start: ${oneLine(reason)}`, steps: [], startedAt: null });
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

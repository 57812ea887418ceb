import { constants } from 'node:os';
import type { StepState } from '../store/job-record.js';
import type { RunFinished } from '../store/store.js';
import { formatDuration } from '../util/duration.js';
import type { JobInfo } from './job-info.js';
import { exitOf, stepStates, type RunState } from './run-table.js';

// How a run ended, as one value: what a backend's observe() answers for a run that is over, and
// what the fetcher (or, for Thread jobs, the starter) records with finishRun. `cancelled` is not
// among them: a run of a job whose cancel was requested ends as it ends, and finishRun-5.lua
// records it as cancelled unless it succeeded.

export type RunOutcome =
  | { kind: 'succeeded'; steps: StepState[]; startedAt: number | null }
  | { kind: 'failed'; exitCode: number | null; reason: string; steps: StepState[]; startedAt: number | null }
  /** Cut short by JobManager itself (its thread stopped, its host was given up on): it runs again without using a retry. */
  | { kind: 'interrupted'; reason: string; steps: StepState[]; startedAt: number | null };

/** The record finishRun takes for a run that ended with `outcome`, and its return data. */
export function finishedRun(id: string, run: number, outcome: RunOutcome, result: unknown, backoffMs: number): RunFinished {
  return {
    id,
    run,
    outcome: outcome.kind,
    exitCode: outcome.kind === 'succeeded' ? 0 : outcome.kind === 'failed' ? outcome.exitCode : null,
    reason: outcome.kind === 'succeeded' ? '' : outcome.reason,
    result: outcome.kind === 'succeeded' ? result : null,
    steps: outcome.steps,
    backoffMs,
    startedAt: outcome.startedAt,
  };
}

/** A timeout or a cancel explains a killed run better than the signal that killed it does. */
export function explainEnd(info: JobInfo | null, fallback: string): string {
  if (info?.timedOut) return `timed out after ${formatDuration(info.timeoutMs ?? 0)}`;
  if (info?.cancelRequested) return 'cancelled';
  return fallback;
}

/** The outcome of a run whose end its run log recorded (X, R or K lines): local and remote alike. */
export function loggedOutcome(run: RunState, info: JobInfo | null, labels: string[]): RunOutcome {
  const startedAt = run.forkedAt ?? info?.startedAt ?? null;
  if (run.refusedAfterCs !== null) {
    // Not the job's doing: it runs again, without using a retry.
    return { kind: 'interrupted', reason: `its launch reached the host ${formatDuration(Math.max(0, run.refusedAfterCs) * 10)} after it was sent, later than the host's lease allows: it never started there`, steps: [], startedAt: null };
  }
  if (run.notStarted) return { kind: 'failed', exitCode: 127, reason: `could not start: ${run.notStarted}`, steps: [], startedAt };
  const steps = stepStates(run, labels);
  const { exitCode, signal } = exitOf(run);
  if (exitCode === 0) return { kind: 'succeeded', steps, startedAt };
  const failed = steps.findIndex((s) => s.state === 'failed');
  const where = failed >= 0 ? `step ${failed + 1} (${steps[failed].label})` : 'the job';
  const how = signal !== null ? `${where} was killed by ${signalName(signal)}` : `${where} exited with code ${exitCode}`;
  return { kind: 'failed', exitCode, reason: explainEnd(info, how), steps, startedAt };
}

export function signalName(signal: number): string {
  const entry = Object.entries(constants.signals).find(([, n]) => n === signal);
  return entry ? entry[0] : `signal ${signal}`;
}

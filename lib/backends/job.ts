import type { JobSpec } from '../jobfile/job-spec.js';
import { isJobPid } from '../util/process.js';
import type { StepState } from '../store/job-record.js';
import type { Outcome } from '../store/store.js';
import type { Logger } from '../util/log.js';
import type { RunTable } from '../runs/run-table.js';
import type { ActorName, ToActor } from '../../actors/protocol.js';

// A job as the fetcher sees it: the old tool's job classes, one per ClassType, each answering
// isFinished() and getReturnData(), plus what ending and killing a run mean for it.

/** The fields of a job record the fetcher needs (one HMGET; see JOB_INFO_FIELDS). */
export interface JobInfo {
  id: string;
  state: string;
  run: number;
  classType: string;
  spec: JobSpec | null;
  pid: number | null;
  startedAt: number | null;
  deadline: number | null;
  cancelRequested: boolean;
  timedOut: boolean;
  killAt: number | null;
  runlog: string | null;
  pollMs: number;
  timeoutMs: number | null;
  location: string | null;
  /** Where the current run holds its slot: local, or host:<name>. */
  host: string | null;
}

export const JOB_INFO_FIELDS = ['state', 'run', 'classType', 'spec', 'pid', 'startedAt', 'deadline', 'cancelRequested', 'timedOut', 'killAt', 'runlog', 'pollMs', 'timeoutMs', 'location', 'host'];

export function parseJobInfo(id: string, values: (string | null)[]): JobInfo | null {
  const [state, run, classType, spec, pid, startedAt, deadline, cancelRequested, timedOut, killAt, runlog, pollMs, timeoutMs, location, host] = values;
  if (!state) return null;
  const num = (v: string | null) => (v === null || v === '' ? null : Number(v));
  let parsed: JobSpec | null = null;
  try {
    parsed = spec ? (JSON.parse(spec) as JobSpec) : null;
  } catch {
    parsed = null;
  }
  // A spec of another shape (a corrupt or forged record) counts as none.
  if (parsed && (typeof parsed !== 'object' || !Array.isArray(parsed.order) || typeof parsed.modules !== 'object')) parsed = null;
  return {
    id, state, run: Number(run ?? 0), classType: classType ?? '?', spec: parsed, startedAt: num(startedAt), deadline: num(deadline),
    cancelRequested: Boolean(cancelRequested), timedOut: Boolean(timedOut), killAt: num(killAt), runlog, pollMs: num(pollMs) ?? 30_000,
    // A pid from Redis is only kept if it can be a job's own process group.
    pid: isJobPid(num(pid)) ? num(pid) : null,
    timeoutMs: num(timeoutMs), location, host,
  };
}

export interface RunResult {
  outcome: Outcome;
  exitCode: number | null;
  reason: string;
  steps: StepState[];
  startedAt: number | null;
}

export interface FetchContext {
  stateDir: string;
  table: RunTable;
  /** The epoch of the starter incarnation that is alive now. */
  currentEpoch(): string;
  send(to: ActorName, message: ToActor): void;
  log: Logger;
}

export abstract class Job {
  /**
   * `info` (the job record's fields) may be null: a run that exited 0 and leaves no return data
   * is recorded from the run log alone, without reading the record (the fast path).
   */
  constructor(
    readonly id: string,
    readonly run: number,
    readonly info: JobInfo | null,
    protected readonly ctx: FetchContext,
  ) {}

  /** True when the run has ended (whatever the outcome). */
  abstract isFinished(): Promise<boolean>;
  /** How the run ended; only after isFinished() said true. */
  abstract result(): RunResult;
  /** The last step's outputs (null if it has none); only for a succeeded run. */
  abstract getReturnData(): Promise<unknown>;
  /** Send a signal to the run's whole process tree (or stop its thread). */
  abstract kill(signal: 'SIGTERM' | 'SIGKILL', reason: string): void;
  /** Step progress while it runs, if known. */
  abstract progress(): StepState[] | null;
}

export function stepLabels(spec: JobSpec | null): string[] {
  return Array.isArray(spec?.order) ? spec.order.map((step) => (typeof step?.label === 'string' ? step.label : '')) : [];
}

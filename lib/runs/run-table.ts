import type { StepState } from '../store/job-record.js';
import { decodeWaitStatus, splitRunId, type RunLogEvent } from './run-log.js';
import { isJobPid } from '../util/process.js';

// What the run logs say about each run that writes one (local and remote runs), rebuilt by the
// fetcher from the logs alone (so a restarted fetcher knows as much as the one that died).

export interface RunState {
  runId: string;
  jobId: string;
  run: number;
  /** The log it is in: a local launcher's epoch, or host:<name>. */
  epoch: string;
  /** Process (and process group) id; null until forked. */
  pid: number | null;
  forkedAt: number | null;
  /** D lines: steps that ended before the last one. */
  steps: { exitCode: number; at: number | null }[];
  /** X line: the script's exit code, and whether its last step left return data. */
  exitCode: number | null;
  returnsData: boolean;
  /** R line: the wait status of the job's shell. */
  waitStatus: number | null;
  endedAt: number | null;
  /** K line: it could not be started. */
  notStarted: string | null;
  /** N line (remote): its launch came too late and it never started; this many centiseconds late. */
  refusedAfterCs: number | null;
  /** The fetcher has recorded its end in Redis. */
  recorded: boolean;
}

export interface LauncherState {
  pid: number | null;
  inputClosed: boolean;
  quit: boolean;
  openRuns: Set<string>;
}

export interface TableChanges {
  started: RunState[];
  stepped: RunState[];
  ended: RunState[];
}

export class RunTable {
  readonly runs = new Map<string, RunState>();
  readonly launchers = new Map<string, LauncherState>();
  /** Reads of the run logs begun so far (the fetcher counts them before each read). */
  reads = 0;
  /** Runs found with no process and no launcher left but no end in the log: `reads` then. */
  readonly unexplained = new Map<string, number>();

  launcher(epoch: string): LauncherState {
    let state = this.launchers.get(epoch);
    if (!state) {
      state = { pid: null, inputClosed: false, quit: false, openRuns: new Set() };
      this.launchers.set(epoch, state);
    }
    return state;
  }

  private runState(epoch: string, runId: string): RunState {
    let state = this.runs.get(runId);
    if (!state) {
      const { jobId, run } = splitRunId(runId);
      state = { runId, jobId, run, epoch, pid: null, forkedAt: null, steps: [], exitCode: null, returnsData: false, waitStatus: null, endedAt: null, notStarted: null, refusedAfterCs: null, recorded: false };
      this.runs.set(runId, state);
      this.launcher(epoch).openRuns.add(runId);
    }
    return state;
  }

  apply(epoch: string, events: RunLogEvent[], now = Date.now()): TableChanges {
    const changes: TableChanges = { started: [], stepped: [], ended: [] };
    const launcher = this.launcher(epoch);
    // A run's end is reported once both its start (F, or K) and its end are known: the job can
    // write X before the launcher writes F (the child runs first), and the start time is needed.
    const ended = (run: RunState, at: number) => {
      if (run.endedAt === null) {
        run.endedAt = at;
        if (run.pid !== null || run.notStarted !== null) changes.ended.push(run);
      }
      launcher.openRuns.delete(run.runId);
    };
    for (const event of events) {
      // Lines about a run that is already recorded change nothing; its R line (the last one
      // a launched run gets) lets it go.
      if ('runId' in event) {
        const known = this.runs.get(event.runId);
        if (known?.recorded) {
          if (event.kind === 'reaped') this.forget(event.runId);
          continue;
        }
      }
      switch (event.kind) {
        case 'launcher':
          launcher.pid = event.pid;
          break;
        case 'inputClosed':
          launcher.inputClosed = true;
          break;
        case 'quit':
          launcher.quit = true;
          // Its F lines are all written now: a run seen ending without one is reported anyway.
          for (const run of this.runs.values()) {
            if (run.epoch === epoch && run.endedAt !== null && run.pid === null && run.notStarted === null && !run.recorded) changes.ended.push(run);
          }
          break;
        case 'forked': {
          // A pid that cannot be a job's own process group (a forged line: jobs can write to
          // the log) is not believed.
          if (!isJobPid(event.pid)) break;
          const run = this.runState(epoch, event.runId);
          run.pid = event.pid;
          run.forkedAt = event.at ?? now;
          if (run.endedAt !== null) changes.ended.push(run); // its X came first
          else changes.started.push(run);
          break;
        }
        case 'step': {
          const run = this.runState(epoch, event.runId);
          run.steps[event.step] = { exitCode: event.exitCode, at: event.at ?? now };
          changes.stepped.push(run);
          break;
        }
        case 'exit': {
          const run = this.runState(epoch, event.runId);
          run.exitCode = event.exitCode;
          run.returnsData = event.returnsData;
          ended(run, now);
          break;
        }
        case 'reaped': {
          const run = this.runState(epoch, event.runId);
          run.waitStatus = event.status;
          // The launcher's clock is the better end time than the moment the X line was read.
          if (run.endedAt !== null && !run.recorded) run.endedAt = event.at;
          ended(run, event.at);
          break;
        }
        case 'notStarted': {
          const run = this.runState(epoch, event.runId);
          run.notStarted = event.reason;
          ended(run, now);
          break;
        }
        case 'refused': {
          const run = this.runState(epoch, event.runId);
          run.notStarted = 'its launch reached the host too late';
          run.refusedAfterCs = event.ageCs;
          ended(run, now);
          break;
        }
        case 'stopped':
          // For the remote backend (its watchdog stopped the run): the run goes on as it was.
          break;
      }
    }
    return changes;
  }

  /**
   * The fetcher recorded this run's end. It is kept until its R line has been read (so late
   * lines are recognised and ignored), unless no R line will come (a remote
   * run, a run that never started, or one already reaped).
   */
  recorded(runId: string): void {
    this.unexplained.delete(runId);
    const run = this.runs.get(runId);
    if (!run) return;
    run.recorded = true;
    // Remote runs get no R line (no launcher reaps them): their X line was their last.
    if (run.waitStatus !== null || run.notStarted !== null || run.epoch.startsWith('host:')) this.forget(runId);
  }

  forget(runId: string): void {
    const run = this.runs.get(runId);
    if (!run) return;
    this.runs.delete(runId);
    this.launchers.get(run.epoch)?.openRuns.delete(runId);
  }

  /** A launcher that quit will write nothing more: forget its recorded runs still kept. */
  forgetEpoch(epoch: string): void {
    for (const [id, run] of this.runs) if (run.epoch === epoch && run.recorded) this.runs.delete(id);
    this.launchers.delete(epoch);
  }
}

/** The exit code a run ended with, and the signal that ended it, if any. */
export function exitOf(run: RunState): { exitCode: number | null; signal: number | null } {
  if (run.exitCode !== null) return { exitCode: run.exitCode, signal: null };
  if (run.waitStatus !== null) return decodeWaitStatus(run.waitStatus);
  return { exitCode: null, signal: null };
}

/**
 * Step states as far as the log shows them: steps that ended (D lines), then the one that was
 * running when the run ended (or is running now). Steps after it are not listed.
 */
export function stepStates(run: RunState, labels: string[]): StepState[] {
  const steps: StepState[] = [];
  let start = run.forkedAt;
  let failed = false;
  for (let i = 0; i < run.steps.length; i++) {
    const d = run.steps[i];
    if (!d) continue;
    steps.push({ label: labels[i] ?? '', state: d.exitCode === 0 ? 'succeeded' : 'failed', startedAt: start, endedAt: d.at, exitCode: d.exitCode });
    start = d.at;
    if (d.exitCode !== 0) failed = true;
  }
  if (failed) return steps;
  const i = steps.length;
  if (i >= labels.length && labels.length > 0) return steps;
  if (run.endedAt === null) {
    steps.push({ label: labels[i] ?? '', state: 'running', startedAt: start, endedAt: null, exitCode: null });
  } else if (!run.notStarted) {
    const { exitCode } = exitOf(run);
    steps.push({ label: labels[i] ?? '', state: exitCode === 0 ? 'succeeded' : 'failed', startedAt: start, endedAt: run.endedAt, exitCode });
  }
  return steps;
}

import { constants } from 'node:os';
import { formatDuration } from '../../util/duration.js';
import { readReturnData } from '../../runtime/function-step.js';
import { Job, stepLabels, type RunResult } from '../job.js';
import { jobDir } from '../../runs/paths.js';
import { runId } from '../../runs/run-log.js';
import { isJobPid, processAlive } from '../../util/process.js';
import { exitOf, stepStates, type RunState } from '../../runs/run-table.js';
import type { StepState } from '../../store/job-record.js';

// ClassType Local: the job's script runs as its own process group, started by the launcher.
// isFinished() reads what the run log says; if the log is silent it asks the kernel whether the
// process group still exists, and only calls a run lost when its launcher (which would have
// recorded the exit) is gone too.

export class LocalJob extends Job {
  private lost = false;

  protected get runState(): RunState | undefined {
    return this.ctx.table.runs.get(runId(this.id, this.run));
  }

  async isFinished(): Promise<boolean> {
    const run = this.runState;
    if (run && run.endedAt !== null) return true;
    const pid = run?.pid ?? this.info?.pid;
    if (!isJobPid(pid)) return false; // not started yet: the starter settles runs that never launched
    if (processAlive(-pid)) return false;
    const epoch = run?.epoch ?? this.info?.runlog;
    const launcher = epoch ? this.ctx.table.launchers.get(epoch) : undefined;
    if (launcher && !launcher.quit && launcher.pid && processAlive(launcher.pid)) return false; // it will record the exit
    // Both gone: every line they were to write is in the run log, but maybe not read yet. The job
    // can end, and its launcher (one whose starter is gone) write R and Q and exit, all between
    // the fetcher's last read and this check: two runs that ended well were recorded as lost so
    // (chaos run, seed 1010). Lost only if a read of the log begun after this check shows no end.
    const table = this.ctx.table;
    const rid = runId(this.id, this.run);
    const checkedAt = table.unexplained.get(rid);
    if (checkedAt === undefined) table.unexplained.set(rid, table.reads);
    if (checkedAt === undefined || table.reads <= checkedAt) return false;
    this.lost = true;
    return true;
  }

  result(): RunResult {
    const run = this.runState;
    const labels = stepLabels(this.info?.spec ?? null);
    const startedAt = run?.forkedAt ?? this.info?.startedAt ?? null;
    if (this.lost || !run) {
      return { outcome: 'failed', exitCode: null, reason: this.describeEnd('its processes ended without recording an exit status (their launcher was killed)'), steps: [], startedAt };
    }
    if (run.notStarted) return { outcome: 'failed', exitCode: 127, reason: `could not start: ${run.notStarted}`, steps: [], startedAt };
    const steps = stepStates(run, labels);
    const { exitCode, signal } = exitOf(run);
    if (exitCode === 0) return { outcome: 'succeeded', exitCode: 0, reason: '', steps, startedAt };
    const failed = steps.findIndex((s) => s.state === 'failed');
    const where = failed >= 0 ? `step ${failed + 1} (${steps[failed].label})` : 'the job';
    const how = signal !== null ? `${where} was killed by ${signalName(signal)}` : `${where} exited with code ${exitCode}`;
    return { outcome: 'failed', exitCode, reason: this.describeEnd(how), steps, startedAt };
  }

  /** Timeouts and cancels explain a killed run better than the signal does. */
  protected describeEnd(fallback: string): string {
    if (this.info?.timedOut) return `timed out after ${formatDuration(this.info.timeoutMs ?? 0)}`;
    if (this.info?.cancelRequested) return 'cancelled';
    return fallback;
  }

  async getReturnData(): Promise<unknown> {
    const spec = this.info?.spec;
    if (!spec || this.runState?.returnsData === false) return null;
    const last = spec.order.length - 1;
    try {
      return readReturnData(jobDir(this.ctx.stateDir, this.id), spec.order[last], last);
    } catch (err) {
      this.ctx.log.warn(`ResultFetcher: job ${this.id}: cannot read its return data (${(err as Error).message})`);
      return null;
    }
  }

  kill(signal: 'SIGTERM' | 'SIGKILL', reason: string): void {
    const pid = this.runState?.pid ?? this.info?.pid;
    if (!isJobPid(pid)) return;
    try {
      process.kill(-pid, signal);
      this.ctx.log.info(`ResultFetcher: job ${this.id}: ${signal} to process group ${pid} (${reason})`);
    } catch {
      // already gone
    }
  }

  progress(): StepState[] | null {
    const run = this.runState;
    return run ? stepStates(run, stepLabels(this.info?.spec ?? null)) : null;
  }
}

export function signalName(signal: number): string {
  const entry = Object.entries(constants.signals).find(([, n]) => n === signal);
  return entry ? entry[0] : `signal ${signal}`;
}

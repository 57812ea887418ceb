import { LocalJob } from '../local/local-job.js';
import { stepLabels, type RunResult } from '../job.js';
import { exitOf, stepStates } from '../../runs/run-table.js';
import { runId } from '../../runs/run-log.js';

// ClassType Thread: Function steps in the starter's piscina pool. Its progress lines go to the
// run log like a Local job's; what differs is that it lives and dies with the starter thread
// that runs it. A run whose starter incarnation (epoch) is gone without an exit line was
// interrupted: it runs again, and the interruption does not use up a retry.

export class ThreadJob extends LocalJob {
  private interrupted = false;

  override async isFinished(): Promise<boolean> {
    const run = this.runState;
    if (run && run.endedAt !== null) return true;
    const epoch = run?.epoch ?? this.info?.runlog;
    if (epoch && epoch !== this.ctx.currentEpoch()) {
      this.interrupted = true;
      return true;
    }
    return false;
  }

  override result(): RunResult {
    const run = this.runState;
    const startedAt = run?.forkedAt ?? this.info?.startedAt ?? null;
    if (this.interrupted || !run) {
      return { outcome: 'interrupted', exitCode: null, reason: 'interrupted: the thread that ran it stopped; it runs again', steps: [], startedAt };
    }
    const steps = stepStates(run, stepLabels(this.info?.spec ?? null));
    const { exitCode } = exitOf(run);
    if (exitCode === 0) return { outcome: 'succeeded', exitCode: 0, reason: '', steps, startedAt };
    const failed = steps.findIndex((s) => s.state === 'failed');
    const where = failed >= 0 ? `step ${failed + 1} (${steps[failed].label})` : 'the job';
    return { outcome: 'failed', exitCode, reason: this.describeEnd(`${where} threw an error (see its log)`), steps, startedAt };
  }

  override kill(_signal: 'SIGTERM' | 'SIGKILL', reason: string): void {
    this.ctx.send('starter', { type: 'abort', runId: runId(this.id, this.run), reason });
  }
}

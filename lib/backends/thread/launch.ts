import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { readReturnData, writeJobFile } from '../../runtime/function-step.js';
import { prepareJobDir } from '../../runs/paths.js';
import type { StepState } from '../../store/job-record.js';
import { stepLabels } from '../../runs/job-info.js';
import { DIST_DIR } from '../../util/paths.js';
import { errorMessage } from '../../util/errors.js';
import type { GrantedRun, LaunchContext, LaunchSide, Orphan } from '../backend.js';
import { jobEnvironment } from '../job-env.js';
import { returnsData } from '../job-script.js';
import { relaunch } from '../granted.js';
import type { ThreadTask } from './thread-task.js';

// Thread jobs, the starter's half and all of it: their Function steps run one after another in a
// piscina pool inside the starter, and the starter records each run's start and end itself
// (RunRecorder: markRunning and finishRun, batched), so no file and no other thread is involved.
// The fetcher still enforces Timeout and cancel: it asks for a run to stop (abort()).
//
// A Thread run lives and dies with the starter that runs it. A new starter therefore finds, at
// its start, runs of Thread jobs that no starter runs any more: those marked running are
// recorded as interrupted (they run again, without using a retry), those granted and taken but
// never started are granted again under a new run number.

const THREAD_TASK = join(DIST_DIR, 'lib', 'backends', 'thread', 'thread-task.js');
/** What markRunning records as the run's origin: a Thread run has no log and no process. */
export const THREAD_ORIGIN = 'thread';

export class ThreadLaunch implements LaunchSide {
  private pool: Piscina | null = null;
  private readonly running = new Map<string, AbortController>();
  private closing = false;

  constructor(private readonly ctx: LaunchContext) {}

  get busy(): boolean {
    return false;
  }

  start(run: GrantedRun): void {
    void this.runSteps(run);
  }

  flush(): void {}

  /** The fetcher decided this run must stop (Timeout, cancel). */
  abort(id: string, run: number, reason: string): void {
    this.running.get(`${id}.${run}`)?.abort(reason);
  }

  private async runSteps(run: GrantedRun): Promise<void> {
    const key = `${run.id}.${run.run}`;
    const abort = new AbortController();
    this.running.set(key, abort);
    const startedAt = Date.now();
    const labels = stepLabels(run.spec);
    const steps: StepState[] = [];
    let dir: string;
    try {
      dir = prepareJobDir(this.ctx.config.stateDir, run.id, { internal: true });
      writeJobFile(dir, { jobId: run.id, run: run.run, attempt: run.attempt, spec: run.spec, raw: run.raw });
    } catch (err) {
      this.running.delete(key);
      this.ctx.recorder.end(run.id, run.run, { kind: 'failed', exitCode: 127, reason: `could not start: ${errorMessage(err)}`, steps, startedAt: null });
      return;
    }
    this.ctx.recorder.start({ id: run.id, run: run.run, pid: 0, startedAt, epoch: THREAD_ORIGIN });
    this.pool ??= new Piscina({ filename: THREAD_TASK, maxThreads: Math.max(1, this.ctx.config.localMaxJobs), idleTimeout: 30_000, env: jobEnvironment() as Record<string, string> });
    let failure: string | null = null;
    for (let i = 0; i < run.spec.order.length && failure === null; i++) {
      const step = run.spec.order[i];
      const task: ThreadTask = { jobDir: dir, step: i, logFile: join(dir, step.log ?? 'job.log') };
      const stepStart = Date.now();
      try {
        await this.pool.run(task, { signal: abort.signal });
        steps.push({ label: labels[i] ?? '', state: 'succeeded', startedAt: stepStart, endedAt: Date.now(), exitCode: 0 });
      } catch (err) {
        failure = abort.signal.aborted ? String(abort.signal.reason) : `step ${i + 1} (${labels[i] ?? ''}) threw an error (see its log)`;
        steps.push({ label: labels[i] ?? '', state: 'failed', startedAt: stepStart, endedAt: Date.now(), exitCode: 1 });
        appendFileSync(join(dir, 'job.log'), `${abort.signal.aborted ? `stopped: ${String(abort.signal.reason)}` : errorMessage(err)}\n`);
      }
      // A run cut short because this starter is closing is not recorded: the next starter finds
      // it running under a starter that is gone, and records it as interrupted.
      if (this.closing) return;
      if (failure === null && i < run.spec.order.length - 1) {
        const progress = [...steps, { label: labels[i + 1] ?? '', state: 'running' as const, startedAt: Date.now(), endedAt: null, exitCode: null }];
        this.ctx.store.saveProgress([{ id: run.id, run: run.run, steps: progress }]).catch((err) => this.ctx.log.warn(`JobStarter: job ${run.id}: progress not saved (${errorMessage(err)})`, { job: run.id }));
      }
    }
    this.running.delete(key);
    if (failure === null) this.ctx.recorder.end(run.id, run.run, { kind: 'succeeded', steps, startedAt }, this.result(dir, run));
    else this.ctx.recorder.end(run.id, run.run, { kind: 'failed', exitCode: 1, reason: failure, steps, startedAt });
  }

  /** The last step's outputs, which the pool thread stored in the job's directory. */
  private result(dir: string, run: GrantedRun): unknown {
    if (!returnsData(run.spec)) return null;
    const last = run.spec.order.length - 1;
    try {
      return readReturnData(dir, run.spec.order[last], last);
    } catch (err) {
      this.ctx.log.warn(`JobStarter: job ${run.id}: cannot read its return data (${errorMessage(err)})`, { job: run.id });
      return null;
    }
  }

  async settle(orphans: Orphan[]): Promise<Orphan[]> {
    for (const orphan of orphans) {
      if (orphan.state === 'running') {
        this.ctx.recorder.end(orphan.id, orphan.run, { kind: 'interrupted', reason: 'interrupted: the thread that ran it stopped; it runs again', steps: [], startedAt: null });
      } else {
        const run = await relaunch(this.ctx, orphan);
        if (run) this.start(run);
      }
    }
    return [];
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const abort of this.running.values()) abort.abort('the supervisor is stopping');
    await this.pool?.destroy();
  }
}

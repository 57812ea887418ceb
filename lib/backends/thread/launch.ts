import { appendFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { returnDataOf } from '../../runtime/function-step.js';
import { jobDir, prepareJobDir } from '../../runs/paths.js';
import type { StepState } from '../../store/job-record.js';
import type { RunOutcome } from '../../runs/outcome.js';
import { stepLabels } from '../../runs/job-info.js';
import { DIST_DIR } from '../../util/paths.js';
import { errorMessage } from '../../util/errors.js';
import type { GrantedRun, LaunchContext, LaunchSide, Orphan } from '../backend.js';
import { jobEnvironment } from '../job-env.js';
import { returnsData } from '../job-script.js';
import { relaunch } from '../granted.js';
import type { ThreadTask } from './thread-task.js';
import { ThreadStops } from './thread-stops.js';

// Thread jobs, the starter's half and all of it: their Function steps run one after another in a
// piscina pool inside the starter, and the starter records each run's start and end itself
// (RunRecorder: markRunning and finishRun, batched), so no file and no other thread is involved.
// The fetcher still enforces Timeout and cancel: it asks for a run to stop (abort()).
//
// A Thread run lives and dies with the starter that runs it. A new starter therefore finds, at
// its start, runs of Thread jobs that no starter runs any more: those marked running are
// recorded as interrupted (they run again, without using a retry), those granted and taken but
// never started are granted again under a new run number.
//
// The hot path costs no file system work: the job goes to the pool thread inside the task and
// what its last step gave comes back as the task's result; the job's directory is made only when
// a step needs it (see thread-task.ts). The pool's threads wait for tasks on their message port,
// not with Atomics.wait: with more threads than cores (one per slot, as it was), waking a thread
// blocked in Atomics.wait cost ~2x the CPU per task here (8 threads on 2 cores); and a thread
// that runs several tasks at once must not block between them.

const THREAD_TASK = join(DIST_DIR, 'lib', 'backends', 'thread', 'thread-task.js');
/** What markRunning records as the run's origin: a Thread run has no log and no process. */
export const THREAD_ORIGIN = 'thread';
/**
 * A Thread run is recorded as running when it has gone on this long (its start time is the
 * real one either way). A no-op job's start and end then cost one script and one event, not
 * two of each, and the event readers (web page, `wait`) wake half as often.
 */
const RUNNING_AFTER_MS = 5;

/** Piscina's errors for the tasks of a thread that ended: terminated, or exited by itself. */
function isThreadEnd(err: unknown): boolean {
  return err instanceof Error && (err.message === 'Terminating worker thread' || err.message.startsWith('worker exited with code'));
}

/** A run in the pool: how to stop it, and its row of the stops table. */
interface PoolRun {
  /** Why it was asked to stop (Timeout, cancel, the supervisor stopping), or null. */
  stopped: string | null;
  row: number;
}

export class ThreadLaunch implements LaunchSide {
  private pool: Piscina | null = null;
  private readonly running = new Map<string, PoolRun>();
  private readonly stops: ThreadStops;
  private closing = false;

  constructor(private readonly ctx: LaunchContext) {
    // A row per run in flight: at most LocalMaxJobs, and recovery's relaunches beside them.
    this.stops = new ThreadStops(2 * Math.max(1, ctx.config.localMaxJobs) + 16);
  }

  get busy(): boolean {
    return false;
  }

  start(run: GrantedRun): void {
    void this.runSteps(run);
  }

  flush(): void {}

  /**
   * The fetcher decided this run must stop (Timeout, cancel): it is asked to, and if it is still
   * on KillGrace later (its function blocks its thread), its thread is ended (thread-stops.ts).
   */
  abort(id: string, run: number, reason: string): void {
    const key = `${id}.${run}`;
    const poolRun = this.running.get(key);
    if (!poolRun || poolRun.stopped !== null) return;
    poolRun.stopped = reason;
    this.stops.ask(key, poolRun.row, reason);
    setTimeout(() => {
      if (this.running.get(key) !== poolRun) return;
      const thread = this.stops.threadOf(poolRun.row);
      const worker = this.pool?.threads.find((t) => t.threadId === thread);
      if (!worker) return;
      this.ctx.log.warn(`JobStarter: job ${id} run ${run} did not stop within KillGrace (its function blocks its thread): ending the thread, and the runs on it with it`, { job: id });
      this.stops.ending(thread);
      void worker.terminate();
    }, this.ctx.config.killGraceMs).unref();
  }

  private async runSteps(run: GrantedRun): Promise<void> {
    const key = `${run.id}.${run.run}`;
    const poolRun: PoolRun = { stopped: null, row: this.stops.take() };
    this.running.set(key, poolRun);
    const startedAt = Date.now();
    // `running` is recorded only if the run is still going after a moment: most Thread jobs end
    // sooner, and their end (finishRun, with this start time) is then their only transition.
    const recordStart = setTimeout(() => this.ctx.recorder.start({ id: run.id, run: run.run, pid: 0, startedAt, epoch: THREAD_ORIGIN }), RUNNING_AFTER_MS);
    this.pool ??= this.makePool();
    let ended: { outcome: RunOutcome; result: unknown } | null;
    try {
      ended = await this.callSteps(run, key, poolRun, this.pool, startedAt);
    } finally {
      clearTimeout(recordStart);
      this.running.delete(key);
      this.stops.give(poolRun.row);
    }
    if (ended) this.ctx.recorder.end(run.id, run.run, ended.outcome, ended.result);
  }

  /**
   * The run's steps, one after another in the pool: how it ended, and what it returns. Null for a
   * run cut short because this starter is closing: it is not recorded, and the next starter finds
   * it running under a starter that is gone and records it as interrupted.
   */
  private async callSteps(run: GrantedRun, key: string, poolRun: PoolRun, pool: Piscina, startedAt: number): Promise<{ outcome: RunOutcome; result: unknown } | null> {
    const labels = stepLabels(run.spec);
    const steps: StepState[] = [];
    const dir = jobDir(this.ctx.config.stateDir, run.id);
    let last: string | null = null;
    for (let i = 0; i < run.spec.order.length; i++) {
      if (poolRun.stopped !== null) return { outcome: { kind: 'failed', exitCode: 1, reason: poolRun.stopped, steps, startedAt }, result: null };
      if (i > 0) this.stops.nextStep(poolRun.row);
      const step = run.spec.order[i];
      const task: ThreadTask = { taken: run.taken, key, stops: this.stops.table, row: poolRun.row, jobDir: dir, step: i, logFile: join(dir, step.log ?? 'job.log') };
      const stepStart = Date.now();
      try {
        last = (await pool.run(task)) as string;
        steps.push({ label: labels[i] ?? '', state: 'succeeded', startedAt: stepStart, endedAt: Date.now(), exitCode: 0 });
      } catch (err) {
        const thread = this.stops.threadOf(poolRun.row);
        if (poolRun.stopped === null && !this.closing && isThreadEnd(err) && (thread === 0 || this.stops.wasEnded(thread))) {
          // Another run's Timeout or cancel ended the pool thread this run shared (its function
          // would not stop), or the thread ended before this run's function was called (it
          // waited on that thread's port): not this job's failure, it runs again.
          return { outcome: { kind: 'interrupted', reason: 'interrupted: its pool thread was stopped to end another Thread job (Timeout or cancel); it runs again', steps, startedAt }, result: null };
        }
        steps.push({ label: labels[i] ?? '', state: 'failed', startedAt: stepStart, endedAt: Date.now(), exitCode: 1 });
        this.noteFailure(run.id, poolRun.stopped !== null ? `stopped: ${poolRun.stopped}` : errorMessage(err));
        if (this.closing) return null;
        const reason = poolRun.stopped ?? `step ${i + 1} (${labels[i] ?? ''}) threw an error (see its log)`;
        return { outcome: { kind: 'failed', exitCode: 1, reason, steps, startedAt }, result: null };
      }
      if (this.closing) return null;
      if (i < run.spec.order.length - 1) {
        const progress = [...steps, { label: labels[i + 1] ?? '', state: 'running' as const, startedAt: Date.now(), endedAt: null, exitCode: null }];
        this.ctx.store.saveProgress([{ id: run.id, run: run.run, steps: progress }]).catch((err) => this.ctx.log.warn(`JobStarter: job ${run.id}: progress not saved (${errorMessage(err)})`, { job: run.id }));
      }
    }
    const result = last && returnsData(run.spec) ? returnDataOf(run.spec.order[run.spec.order.length - 1], last) : null;
    return { outcome: { kind: 'succeeded', steps, startedAt }, result };
  }

  /**
   * A thread per core, not per slot: a slot is a job in flight, and a thread runs several at once
   * (as BullMQ's concurrency does in one), while each thread costs its start-up (a V8 isolate and
   * node's bootstrap, ~10 MB) and, past the cores, only switches. Eight threads on two cores
   * spent more CPU starting than 3,000 no-op jobs cost to run (measured with --cpu-prof).
   * Tasks are given no AbortSignal: piscina would run each on a thread of its own (it stops a
   * task by ending its thread); thread-stops.ts stops them instead.
   */
  private makePool(): Piscina {
    const slots = Math.max(1, this.ctx.config.localMaxJobs);
    const threads = Math.min(slots, availableParallelism());
    return new Piscina({
      filename: THREAD_TASK,
      minThreads: 1,
      maxThreads: threads,
      concurrentTasksPerWorker: Math.ceil(slots / threads),
      idleTimeout: 30_000,
      atomics: 'disabled',
      env: jobEnvironment() as Record<string, string>,
    });
  }

  /** Why a step failed, in job.log (the directory made now if the step never needed it). */
  private noteFailure(id: string, text: string): void {
    try {
      appendFileSync(join(prepareJobDir(this.ctx.config.stateDir, id), 'job.log'), `${text}\n`);
    } catch (err) {
      this.ctx.log.warn(`JobStarter: job ${id}: cannot write to its job.log (${errorMessage(err)})`, { job: id });
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
    for (const poolRun of this.running.values()) poolRun.stopped ??= 'the supervisor is stopping';
    await this.pool?.destroy();
    this.stops.close();
  }
}

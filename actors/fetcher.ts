import { mkdirSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './messages.js';
import { Store, type RunFinished, type RunStarted } from '../lib/store/store.js';
import { SignalWaiter } from '../lib/store/signal-waiter.js';
import { StopSignal, Wakeup } from '../lib/stop-signal.js';
import { RunLogReader, runId as makeRunId } from '../lib/jobs/run-log.js';
import { RunTable, type RunState } from '../lib/jobs/run-table.js';
import { JOB_INFO_FIELDS, parseJobInfo, type FetchContext, type Job, type JobInfo } from '../lib/jobs/job.js';
import { LocalJob } from '../lib/jobs/local-job.js';
import { ThreadJob } from '../lib/jobs/thread-job.js';
import { errorMessage } from '../lib/errors.js';

// The ResultFetcher actor. It keeps Running_Queue (score = the next time to look at a job) and
// sleeps exactly until the earliest job is due or something reports: a run log line (a job
// started, finished a step, exited), a Signal:fetcher token (a cancel), a message. Then it asks
// the due jobs isFinished(), collects getReturnData() from finished ones, and records each end
// with finishRun-5.lua (slot freed, retry queued, or final state) in one step.
//
//   run logs ──fs.watch──┐
//   Signal:fetcher ──────┼──> wakeup ──> ingest lines ──> markRunning / finishRun
//   messages ────────────┘               poll due jobs ──> isFinished / kill on timeout, cancel

const MAX_WAIT_MS = 5000;
const DUE_BATCH = 500;

class Fetcher implements Actor {
  private readonly waiter: SignalWaiter;
  private readonly wakeup = new Wakeup();
  private readonly table = new RunTable();
  private readonly readers = new Map<string, RunLogReader>();
  private watcher: FSWatcher | null = null;
  private epoch: string;
  private readonly jobCtx: FetchContext;
  private finished = 0;

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
  ) {
    this.waiter = new SignalWaiter(ctx.redisUrl);
    this.epoch = ctx.epoch;
    this.jobCtx = {
      stateDir: ctx.config.stateDir,
      table: this.table,
      currentEpoch: () => this.epoch,
      send: ctx.send,
      log: ctx.log,
    };
  }

  async run(): Promise<void> {
    const { stop, log } = this.ctx;
    const runs = join(this.ctx.config.stateDir, 'runs');
    mkdirSync(runs, { recursive: true, mode: 0o700 });
    this.watcher = watch(runs, () => this.wakeup.trigger());
    this.watcher.on('error', () => {});
    void this.listenForSignals(stop);
    log.info('ResultFetcher: watching Running_Queue and the run logs');
    while (!stop.stopped) {
      await this.refreshReaders();
      await this.ingest();
      const more = await this.pollDue();
      if (more) continue;
      await this.wakeup.wait(await this.msUntilNextDue(), stop);
    }
  }

  handle(message: ToActor): void {
    if (message.type === 'epoch') this.epoch = message.epoch;
    this.wakeup.trigger();
  }

  /** Signal:fetcher tokens (cancels) wake the main loop. */
  private async listenForSignals(stop: StopSignal): Promise<void> {
    while (!stop.stopped) {
      if (await this.waiter.wait([this.store.keys.signal('fetcher')], MAX_WAIT_MS, stop)) this.wakeup.trigger();
    }
  }

  private async refreshReaders(): Promise<void> {
    const logs = await this.store.redis.hgetall(this.store.keys.runlogs);
    for (const [epoch, path] of Object.entries(logs)) {
      if (!this.readers.has(epoch)) this.readers.set(epoch, new RunLogReader(path));
    }
  }

  /** New run log lines: starts, step progress, ends. */
  private async ingest(): Promise<void> {
    const started: RunState[] = [];
    const stepped: RunState[] = [];
    const ended: RunState[] = [];
    for (const [epoch, reader] of this.readers) {
      const events = reader.readNew();
      if (events.length === 0) continue;
      const changes = this.table.apply(epoch, events);
      started.push(...changes.started);
      stepped.push(...changes.stepped);
      ended.push(...changes.ended);
    }
    // A run that started and ended within one batch goes straight to finishRun.
    const toMark: RunStarted[] = started
      .filter((run) => run.endedAt === null && run.pid !== null)
      .map((run) => ({ id: run.jobId, run: run.run, pid: run.pid!, startedAt: run.forkedAt ?? Date.now() }));
    await this.store.markRunning(toMark);
    if (ended.length) await this.finishRuns(ended.filter((run) => !run.recorded));
    const progressing = stepped.filter((run) => run.endedAt === null);
    if (progressing.length) await this.saveProgress(progressing);
    await this.forgetFinishedLogs();
  }

  private async loadJobs(ids: string[]): Promise<Map<string, Job>> {
    const rows = await this.store.getFields(ids, JOB_INFO_FIELDS);
    const jobs = new Map<string, Job>();
    ids.forEach((id, i) => {
      const info = parseJobInfo(id, rows[i]);
      if (info) jobs.set(id, this.jobFor(info));
    });
    return jobs;
  }

  private jobFor(info: JobInfo): Job {
    return info.classType === 'Thread' ? new ThreadJob(info, this.jobCtx) : new LocalJob(info, this.jobCtx);
  }

  private async finishRuns(runs: RunState[]): Promise<void> {
    const jobs = await this.loadJobs(runs.map((run) => run.jobId));
    const finished: RunFinished[] = [];
    for (const run of runs) {
      const job = jobs.get(run.jobId);
      run.recorded = true;
      // A replayed line for a run that is no longer the job's current one changes nothing.
      if (!job || job.info.run !== run.run || !['granted', 'running'].includes(job.info.state)) continue;
      if (await job.isFinished()) finished.push(await this.describe(job));
    }
    await this.record(finished);
  }

  private async describe(job: Job): Promise<RunFinished> {
    const result = job.result();
    const returnData = result.outcome === 'succeeded' ? await job.getReturnData() : null;
    return {
      id: job.id,
      run: job.info.run,
      outcome: result.outcome,
      exitCode: result.exitCode,
      reason: result.reason,
      result: returnData,
      steps: result.steps,
      backoffMs: this.ctx.config.retryBackoffMs,
      startedAt: result.startedAt,
    };
  }

  private async record(finished: RunFinished[]): Promise<void> {
    if (finished.length === 0) return;
    await this.store.finishRuns(finished);
    this.finished += finished.length;
    for (const f of finished) {
      const line = `ResultFetcher: job ${f.id} run ${f.run} ${f.outcome}${f.reason ? `: ${f.reason}` : ''}`;
      if (f.outcome === 'succeeded') this.ctx.log.debug(line);
      else this.ctx.log.info(line);
      this.table.forget(makeRunId(f.id, f.run));
    }
  }

  private async saveProgress(runs: RunState[]): Promise<void> {
    const jobs = await this.loadJobs(runs.map((run) => run.jobId));
    const pipeline = this.store.redis.pipeline();
    for (const run of runs) {
      const job = jobs.get(run.jobId);
      const steps = job?.info.run === run.run ? job.progress() : null;
      if (steps) pipeline.hset(this.store.keys.job(run.jobId), 'steps', JSON.stringify(steps));
    }
    await pipeline.exec();
  }

  /** Jobs whose time has come: finished? past the deadline? cancelled? */
  private async pollDue(): Promise<boolean> {
    const now = Date.now();
    const ids = await this.store.redis.zrangebyscore(this.store.keys.runningQueue, '-inf', now, 'LIMIT', 0, DUE_BATCH);
    if (ids.length === 0) return false;
    const jobs = await this.loadJobs(ids);
    const finished: RunFinished[] = [];
    const pipeline = this.store.redis.pipeline();
    for (const id of ids) {
      const job = jobs.get(id);
      if (!job || job.info.state !== 'running') {
        pipeline.zrem(this.store.keys.runningQueue, id);
        continue;
      }
      try {
        if (await job.isFinished()) {
          finished.push(await this.describe(job));
          continue;
        }
        pipeline.zadd(this.store.keys.runningQueue, 'XX', this.enforceLimits(job, now, pipeline), id);
      } catch (err) {
        this.ctx.log.warn(`ResultFetcher: job ${id}: ${errorMessage(err)}; trying again next poll`);
        pipeline.zadd(this.store.keys.runningQueue, 'XX', now + job.info.pollMs, id);
      }
    }
    await pipeline.exec();
    await this.record(finished);
    return ids.length === DUE_BATCH;
  }

  /** Cancel and Timeout: TERM to the process group, KILL after KillGrace. Returns the next look. */
  private enforceLimits(job: Job, now: number, pipeline: ReturnType<Store['redis']['pipeline']>): number {
    const { info } = job;
    const grace = this.ctx.config.killGraceMs;
    const key = this.store.keys.job(info.id);
    let next = now + info.pollMs;
    if (info.killAt !== null) {
      if (now >= info.killAt) {
        job.kill('SIGKILL', `still running ${grace}ms after SIGTERM`);
        pipeline.hset(key, 'killAt', now + grace);
        return now + grace;
      }
      return Math.min(next, info.killAt);
    }
    const overdue = info.deadline !== null && now >= info.deadline;
    if (info.cancelRequested || overdue) {
      if (overdue && !info.cancelRequested) pipeline.hset(key, 'timedOut', 1);
      job.kill('SIGTERM', info.cancelRequested ? 'cancelled' : 'timed out');
      pipeline.hset(key, 'killAt', now + grace);
      return now + grace;
    }
    if (info.deadline !== null) next = Math.min(next, info.deadline);
    return next;
  }

  private async msUntilNextDue(): Promise<number> {
    const first = await this.store.redis.zrange(this.store.keys.runningQueue, 0, 0, 'WITHSCORES');
    if (first.length < 2) return MAX_WAIT_MS;
    return Math.max(0, Math.min(Number(first[1]) - Date.now(), MAX_WAIT_MS));
  }

  /** A run log whose launcher has quit and whose runs are all recorded is deleted. */
  private async forgetFinishedLogs(): Promise<void> {
    for (const [epoch, reader] of this.readers) {
      const launcher = this.table.launchers.get(epoch);
      if (!launcher?.quit || launcher.openRuns.size > 0 || epoch === this.epoch) continue;
      await this.store.redis.hdel(this.store.keys.runlogs, epoch);
      try {
        unlinkSync(reader.path);
      } catch {
        // already gone
      }
      this.readers.delete(epoch);
      this.table.launchers.delete(epoch);
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.waiter.close();
    await this.store.close();
    this.ctx.log.info(`ResultFetcher: stopped after recording ${this.finished} runs`);
  }
}

runActor('fetcher', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor');
  return new Fetcher(ctx, store);
});

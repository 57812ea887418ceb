import { mkdirSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './protocol.js';
import { Store, type GrantPool, type RunFinished, type RunStarted } from '../lib/store/store.js';
import { BlockingConnection } from '../lib/store/blocking.js';
import { StopSignal, Wakeup } from '../lib/util/stop-signal.js';
import { RunLogReader, runId as makeRunId } from '../lib/runs/run-log.js';
import { RunTable, type RunState } from '../lib/runs/run-table.js';
import { JOB_INFO_FIELDS, parseJobInfo, type FetchContext, type Job, type JobInfo } from '../lib/backends/job.js';
import { LocalJob } from '../lib/backends/local/local-job.js';
import { ThreadJob } from '../lib/backends/thread/thread-job.js';
import { poolsFor } from '../lib/backends/placement.js';
import { runLogPath } from '../lib/runs/paths.js';
import { RemoteFleet } from '../lib/backends/remote/fleet.js';
import { RemoteJob } from '../lib/backends/remote/remote-job.js';
import { errorMessage } from '../lib/util/errors.js';

// The ResultFetcher actor. It keeps Running_Queue (score = the next time to look at a job) and
// sleeps exactly until the earliest job is due or something reports: a run log line (a job
// started, finished a step, exited), a Signal:fetcher token (a cancel), a message. Then it asks
// jobs isFinished(), collects getReturnData() from finished ones, and records each end with
// finishRun-5.lua (slot freed and handed to the next waiting job, retry queued, or final state)
// in one step.
//
//   run logs ──fs.watch──┐
//   Signal:fetcher ──────┼──> wakeup ──> new run log lines ──> markRunning / finishRun
//   messages ────────────┘               due jobs ──> isFinished, or kill on timeout / cancel
//
// A run that exited 0 and leaves no return data is recorded from its run log lines alone (no
// read of the job record): at thousands of short jobs a second, that is most of them.

const MAX_WAIT_MS = 5000;
const DUE_BATCH = 500;
const REFRESH_LOGS_MS = 5000;
const REFRESH_FLEET_MS = 1000;
/**
 * A run is marked running once it has run this long. Most short jobs end sooner and go from
 * granted to their end in one step, which halves the Redis work per job; the start time recorded
 * is the real one either way.
 */
const MARK_RUNNING_AFTER_MS = 50;
/**
 * Run log lines come three per job (F, X, R), each one a file change. Reading them at most this
 * often lets one read take several jobs' lines at thousands of jobs a second, for at most this
 * much delay.
 */
const MIN_INGEST_GAP_MS = 3;

class Fetcher implements Actor {
  private readonly blocking: BlockingConnection;
  private readonly wakeup = new Wakeup();
  private readonly table = new RunTable();
  private readonly readers = new Map<string, RunLogReader>();
  private readonly fleet: RemoteFleet;
  private pools: GrantPool[];
  private fleetRefreshedAt = 0;
  private watcher: FSWatcher | null = null;
  private epoch: string;
  private readonly jobCtx: FetchContext;
  private finished = 0;
  /** When the earliest job in Running_Queue is due (a cache: Redis holds the truth). */
  private nextDueAt = 0;
  private logsRefreshedAt = 0;
  /** Runs seen starting, not yet marked running (see MARK_RUNNING_AFTER_MS). */
  private readonly starts = new Map<string, RunStarted & { seenAt: number }>();

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
    storeId: string,
  ) {
    this.blocking = new BlockingConnection(ctx.redisUrl);
    this.epoch = ctx.epoch;
    this.fleet = new RemoteFleet(ctx.config, store, ctx.log, () => this.wakeup.trigger(), { deployment: ctx.config.deployment, storeId });
    this.pools = poolsFor(ctx.config, store.keys);
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
    let lastIngest = 0;
    while (!stop.stopped) {
      if (Date.now() - this.logsRefreshedAt >= REFRESH_LOGS_MS) await this.refreshReaders();
      if (Date.now() - this.fleetRefreshedAt >= REFRESH_FLEET_MS) await this.refreshFleet();
      const gap = Date.now() - lastIngest;
      if (gap < MIN_INGEST_GAP_MS) await stop.sleep(MIN_INGEST_GAP_MS - gap);
      lastIngest = Date.now();
      await this.ingest();
      if (Date.now() >= this.nextDueAt && (await this.pollDue())) continue;
      // With SSH hosts, look at them (who has jobs, who is unreachable) every REFRESH_FLEET_MS.
      const fleetIn = this.fleet.hosts.all().length ? this.fleetRefreshedAt + REFRESH_FLEET_MS - Date.now() : MAX_WAIT_MS;
      await this.wakeup.wait(Math.min(this.nextDueAt - Date.now(), this.nextStartMarkIn(), fleetIn, MAX_WAIT_MS), stop);
    }
  }

  handle(message: ToActor): void {
    if (message.type === 'epoch') {
      this.epoch = message.epoch;
      this.addReader(this.epoch, runLogPath(this.ctx.config.stateDir, this.epoch));
    }
    // The starter launched jobs on a host: follow its run log now (a full look at the fleet, so
    // only for a host not followed yet: launches come hundreds a second).
    if (message.type === 'launched' && !this.fleet.follows(message.host)) this.fleetRefreshedAt = 0;
    this.wakeup.trigger();
  }

  /** Hosts: who has jobs (follow their run logs), who is down (its jobs are retried or failed). */
  private async refreshFleet(): Promise<void> {
    const force = this.fleetRefreshedAt === 0;
    this.fleetRefreshedAt = Date.now();
    await this.fleet.refresh(force);
    this.pools = poolsFor(this.ctx.config, this.store.keys, this.fleet.hosts);
    for (const { host, reason } of await this.fleet.newlyDown()) await this.giveUpOn(host, reason);
  }

  /**
   * A host is down: its jobs' runs end here. A job that may run on any host (Hostname: any, or
   * an EC2 job) is queued again (without using a retry: the host failed, not the job); one bound
   * to that host fails.
   */
  private async giveUpOn(host: string, reason: string): Promise<void> {
    const ids = await this.store.redis.smembers(this.store.keys.remoteJobs(host));
    const infos = await this.loadInfo(ids);
    const finished: RunFinished[] = [];
    for (const info of infos.values()) {
      if (!['granted', 'running'].includes(info.state)) continue;
      finished.push({
        id: info.id, run: info.run, outcome: info.location === 'any' || info.location?.startsWith('ec2:') ? 'interrupted' : 'failed', exitCode: null, reason,
        result: null, steps: null, backoffMs: this.ctx.config.retryBackoffMs, startedAt: info.startedAt,
      });
    }
    await this.record(finished);
  }

  /** Signal:fetcher tokens (a cancel changed Running_Queue) wake the main loop and make it look. */
  private async listenForSignals(stop: StopSignal): Promise<void> {
    while (!stop.stopped) {
      if (await this.blocking.wait([this.store.keys.signal('fetcher')], MAX_WAIT_MS, stop)) {
        this.nextDueAt = 0;
        this.wakeup.trigger();
      }
    }
  }

  /** The run logs to read: the current starter's (known at once), and older ones with runs left. */
  private async refreshReaders(): Promise<void> {
    this.addReader(this.epoch, runLogPath(this.ctx.config.stateDir, this.epoch));
    const logs = await this.store.redis.hgetall(this.store.keys.runlogs);
    for (const [epoch, path] of Object.entries(logs)) this.addReader(epoch, path);
    this.logsRefreshedAt = Date.now();
  }

  private addReader(epoch: string, path: string): void {
    if (!this.readers.has(epoch)) this.readers.set(epoch, new RunLogReader(path));
  }

  /** New run log lines: starts, step progress, ends. */
  private async ingest(): Promise<void> {
    this.table.reads++;
    const stepped: RunState[] = [];
    const ended: RunState[] = [];
    const now = Date.now();
    // Local run logs (read here) and remote ones (streamed by the fleet's followers).
    const local = [...this.readers].map(([epoch, reader]) => ({ epoch, events: reader.readNew() }));
    for (const { epoch, events } of [...local, ...this.fleet.drain()]) {
      if (events.length === 0) continue;
      const changes = this.table.apply(epoch, events);
      for (const run of changes.started) {
        if (run.endedAt === null && run.pid !== null) this.starts.set(run.runId, { id: run.jobId, run: run.run, pid: run.pid, startedAt: run.forkedAt ?? now, epoch, seenAt: now });
      }
      stepped.push(...changes.stepped.filter((run) => run.endedAt === null));
      ended.push(...changes.ended.filter((run) => !run.recorded));
    }
    for (const run of ended) this.starts.delete(run.runId);
    const due = [...this.starts.values()].filter((start) => now - start.seenAt >= MARK_RUNNING_AFTER_MS || stepped.some((run) => run.runId === makeRunId(start.id, start.run)));
    for (const start of due) this.starts.delete(makeRunId(start.id, start.run));
    if (due.length === 0 && stepped.length === 0 && ended.length === 0) return;
    // Issued in the same tick, these go to Redis in one write.
    const [earliest] = await Promise.all([this.store.markRunning(due), this.finishRuns(ended), this.saveProgress(stepped)]);
    if (earliest !== null) this.nextDueAt = Math.min(this.nextDueAt, earliest);
    await this.fleet.saveOffsets();
    await this.forgetFinishedLogs();
  }

  /** Milliseconds until the oldest start waiting to be marked running is due. */
  private nextStartMarkIn(): number {
    let oldest = Infinity;
    for (const start of this.starts.values()) oldest = Math.min(oldest, start.seenAt);
    return oldest === Infinity ? MAX_WAIT_MS : Math.max(0, oldest + MARK_RUNNING_AFTER_MS - Date.now());
  }

  private async loadInfo(ids: string[]): Promise<Map<string, JobInfo>> {
    const infos = new Map<string, JobInfo>();
    if (ids.length === 0) return infos;
    const rows = await this.store.getFields(ids, JOB_INFO_FIELDS);
    ids.forEach((id, i) => {
      const info = parseJobInfo(id, rows[i]);
      if (info) infos.set(id, info);
    });
    return infos;
  }

  /** The job class for a run: Thread (pid 0), Remote (on a host), else Local. */
  private jobFor(id: string, run: number, info: JobInfo | null, thread: boolean): Job {
    const where = info?.host ?? this.table.runs.get(makeRunId(id, run))?.epoch ?? '';
    if (where.startsWith('host:')) return new RemoteJob(id, run, info, this.jobCtx, this.fleet.context);
    return thread ? new ThreadJob(id, run, info, this.jobCtx) : new LocalJob(id, run, info, this.jobCtx);
  }

  private async finishRuns(runs: RunState[]): Promise<void> {
    if (runs.length === 0) return;
    const fast = (run: RunState) => run.exitCode === 0 && !run.returnsData;
    // The fast path reads nothing: its finishRun call goes out in this tick.
    const fastRuns = runs.filter(fast);
    const slowRuns = runs.filter((run) => !fast(run));
    const quick = this.record(fastRuns.map((run) => this.describeSucceeded(this.jobFor(run.jobId, run.run, null, run.pid === 0))));
    const infos = await this.loadInfo(slowRuns.map((run) => run.jobId));
    const finished: RunFinished[] = [];
    for (const run of slowRuns) {
      const info = infos.get(run.jobId) ?? null;
      // A replayed line for a run that is not the job's current one changes nothing.
      if (!info || info.run !== run.run || !['granted', 'running'].includes(info.state)) {
        this.table.recorded(run.runId);
        continue;
      }
      const job = this.jobFor(run.jobId, run.run, info, run.pid === 0 || info.classType === 'Thread');
      try {
        if (await job.isFinished()) finished.push(await this.describe(job));
      } catch (err) {
        // One job whose record cannot be made sense of must not stop the others (nor, replayed
        // from the run log after a restart, stop the fetcher again and again): it fails.
        this.ctx.log.error(`ResultFetcher: job ${run.jobId} run ${run.run}: ${errorMessage(err)}`);
        finished.push({ id: run.jobId, run: run.run, outcome: 'failed', exitCode: null, reason: `its record could not be read: ${errorMessage(err)}`, result: null, steps: null, backoffMs: this.ctx.config.retryBackoffMs, startedAt: run.forkedAt });
      }
    }
    await Promise.all([quick, this.record(finished)]);
  }

  /** A run that exited 0 and left no return data: all that finishRun needs is in the run log. */
  private describeSucceeded(job: Job): RunFinished {
    const result = job.result();
    return { id: job.id, run: job.run, outcome: result.outcome, exitCode: result.exitCode, reason: result.reason, result: null, steps: result.steps, backoffMs: this.ctx.config.retryBackoffMs, startedAt: result.startedAt };
  }

  private async describe(job: Job): Promise<RunFinished> {
    const result = job.result();
    const returnData = result.outcome === 'succeeded' ? await job.getReturnData() : null;
    return {
      id: job.id,
      run: job.run,
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
    await this.store.finishRuns(finished, this.pools);
    this.finished += finished.length;
    for (const f of finished) {
      const line = `ResultFetcher: job ${f.id} run ${f.run} ${f.outcome}${f.reason ? `: ${f.reason}` : ''}`;
      if (f.outcome === 'succeeded') this.ctx.log.debug(line);
      else this.ctx.log.info(line);
      this.table.recorded(makeRunId(f.id, f.run));
    }
  }

  /** Step progress of running jobs, for `show`. */
  private async saveProgress(runs: RunState[]): Promise<void> {
    if (runs.length === 0) return;
    await this.store.saveProgress(runs.map((run) => ({ id: run.jobId, run: run.run, steps: this.jobFor(run.jobId, run.run, null, run.pid === 0).progress() ?? [] })));
  }

  /** Jobs whose time has come: finished? past the deadline? cancelled? True if there may be more. */
  private async pollDue(): Promise<boolean> {
    const now = Date.now();
    const k = this.store.keys;
    const ids = await this.store.redis.zrangebyscore(k.runningQueue, '-inf', now, 'LIMIT', 0, DUE_BATCH);
    const infos = await this.loadInfo(ids);
    await this.fleet.poll([...infos.values()].filter((info) => info.state === 'running' && info.host?.startsWith('host:') && !this.table.runs.get(makeRunId(info.id, info.run))?.endedAt));
    const finished: RunFinished[] = [];
    const pipeline = this.store.redis.pipeline();
    for (const id of ids) {
      const info = infos.get(id);
      if (!info || info.state !== 'running') {
        pipeline.zrem(k.runningQueue, id);
        continue;
      }
      const job = this.jobFor(id, info.run, info, info.classType === 'Thread');
      try {
        if (await job.isFinished()) {
          finished.push(await this.describe(job));
          continue;
        }
        pipeline.zadd(k.runningQueue, 'XX', this.enforceLimits(job, info, now, pipeline), id);
      } catch (err) {
        this.ctx.log.warn(`ResultFetcher: job ${id}: ${errorMessage(err)}; trying again next poll`);
        pipeline.zadd(k.runningQueue, 'XX', now + info.pollMs, id);
      }
    }
    await pipeline.exec();
    await this.record(finished);
    const next = await this.store.redis.zrange(k.runningQueue, 0, 0, 'WITHSCORES');
    this.nextDueAt = next.length >= 2 ? Number(next[1]) : Date.now() + MAX_WAIT_MS;
    return ids.length === DUE_BATCH;
  }

  /** Cancel and Timeout: TERM to the process group, KILL after KillGrace. Returns the next look. */
  private enforceLimits(job: Job, info: JobInfo, now: number, pipeline: ReturnType<Store['redis']['pipeline']>): number {
    const grace = this.ctx.config.killGraceMs;
    const key = this.store.keys.job(info.id);
    const next = now + info.pollMs;
    if (info.killAt !== null) {
      if (now < info.killAt) return Math.min(next, info.killAt);
      job.kill('SIGKILL', `still running ${grace}ms after SIGTERM`);
      pipeline.hset(key, 'killAt', now + grace);
      return now + grace;
    }
    const overdue = info.deadline !== null && now >= info.deadline;
    if (info.cancelRequested || overdue) {
      if (overdue && !info.cancelRequested) pipeline.hset(key, 'timedOut', 1);
      job.kill('SIGTERM', info.cancelRequested ? 'cancelled' : 'timed out');
      pipeline.hset(key, 'killAt', now + grace);
      return now + grace;
    }
    return info.deadline !== null ? Math.min(next, info.deadline) : next;
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
      reader.close();
      this.readers.delete(epoch);
      this.table.forgetEpoch(epoch);
    }
  }

  async close(): Promise<void> {
    this.fleet.close();
    this.watcher?.close();
    this.blocking.close();
    await this.store.close();
    this.ctx.log.info(`ResultFetcher: stopped after recording ${this.finished} runs`);
  }
}

runActor('fetcher', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor');
  return new Fetcher(ctx, store, await store.storeId());
});

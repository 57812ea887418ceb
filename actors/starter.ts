import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './messages.js';
import { Store, type TakenJob } from '../lib/store/store.js';
import { SignalWaiter } from '../lib/store/signal-waiter.js';
import { Launcher } from '../lib/jobs/launcher.js';
import { buildJobScript, GNU_CLOCK, INTERNAL_DIR, needsInternalDir } from '../lib/jobs/job-script.js';
import { writeJobFile } from '../lib/jobs/function-step.js';
import { RunLogReader, runId as makeRunId } from '../lib/jobs/run-log.js';
import { jobDir, runLogPath, STEP_RUNNER, THREAD_TASK } from '../lib/jobs/local-paths.js';
import { parseJson } from '../lib/store/job-record.js';
import type { JobSpec } from '../lib/spec/job-spec.js';
import { errorMessage } from '../lib/errors.js';
import type { ThreadTask } from '../lib/jobs/thread-task.js';

// The JobStarter actor. It takes granted jobs from Granted_Queue (takeGranted-3.lua moves each
// into Starting with a new run number, in one step) and starts them by ClassType:
//   Local  -> a launch request to this incarnation's launcher, which forks the job's script;
//   Thread -> the job's Function steps, one after another, in a piscina pool.
// It does not wait for them: the fetcher learns that they started and ended from the run log.
//
// Recovery (at start): a job left in Starting by an earlier incarnation was either launched
// (its run log has F or K for that run: the fetcher takes it from there) or provably never
// launched (that launcher closed its input or died without a line for it): it is relaunched with
// a new run number. A run is never started twice.

const TAKE_BATCH = 64;
const IDLE_WAIT_MS = 5000;
/** After this many launches the starter moves to a new launcher and run log, so logs stay small. */
const LAUNCHES_PER_EPOCH = 50_000;

class Starter implements Actor {
  private readonly waiter: SignalWaiter;
  private launcher: Launcher;
  private epoch: string;
  private launches = 0;
  private pool: Piscina | null = null;
  private readonly threadRuns = new Map<string, AbortController>();
  private recoveryPending = true;
  private closing = false;

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
  ) {
    this.waiter = new SignalWaiter(ctx.redisUrl);
    this.epoch = ctx.epoch;
    this.launcher = this.openLauncher(ctx.epoch);
  }

  private openLauncher(epoch: string): Launcher {
    const path = runLogPath(this.ctx.config.stateDir, epoch);
    mkdirSync(join(this.ctx.config.stateDir, 'runs'), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.ctx.config.stateDir, 'jobs'), { recursive: true, mode: 0o700 });
    return new Launcher(epoch, path, this.ctx.log, (code) => {
      // The launcher should only end when told to; if it dies, this incarnation cannot start
      // local jobs any more. Crash, and let the supervisor start a fresh starter and launcher.
      this.ctx.log.error(`JobStarter: launcher ${epoch} exited (code ${code}); restarting the starter`);
      process.exit(71);
    });
  }

  async run(): Promise<void> {
    const { stop, log } = this.ctx;
    await this.store.redis.hset(this.store.keys.runlogs, this.epoch, this.launcher.runLog);
    log.info(`JobStarter: launcher ${this.epoch} (pid ${this.launcher.pid}) writing ${this.launcher.runLog}`);
    while (!stop.stopped) {
      if (this.recoveryPending) this.recoveryPending = !(await this.recover());
      const taken = await this.store.takeGranted(TAKE_BATCH, this.epoch);
      for (const job of taken) this.start(job);
      if (this.launches >= LAUNCHES_PER_EPOCH) await this.rotate();
      if (taken.length === TAKE_BATCH) continue;
      await this.waiter.wait([this.store.keys.signal('starter')], this.recoveryPending ? 200 : IDLE_WAIT_MS, stop);
    }
  }

  handle(message: ToActor): void {
    if (message.type === 'abort') this.threadRuns.get(message.runId)?.abort(message.reason);
  }

  private start(job: TakenJob): void {
    const rid = makeRunId(job.id, job.run);
    const spec = parseJson(job.spec) as JobSpec | null;
    const dir = jobDir(this.ctx.config.stateDir, job.id);
    try {
      if (!spec) throw new Error('the job record has no usable spec');
      if (needsInternalDir(spec)) {
        mkdirSync(join(dir, INTERNAL_DIR), { recursive: true });
        writeJobFile(dir, { jobId: job.id, run: job.run, attempt: job.attempt, spec, raw: parseJson(job.raw) });
      }
      if (spec.classType === 'Thread') {
        void this.runThreadJob(rid, dir, spec);
      } else {
        const script = buildJobScript(spec, {
          runId: rid, runLog: this.launcher.runLog, jobId: job.id, run: job.run, attempt: job.attempt, jobDir: dir,
          node: process.execPath, stepRunner: STEP_RUNNER, clock: GNU_CLOCK,
        });
        this.launcher.launch(rid, dir, script);
      }
      this.launches++;
      this.ctx.log.debug(`JobStarter: started job ${job.id} run ${job.run} (${spec.classType})`);
    } catch (err) {
      // Recorded as a run that could not start; the fetcher turns it into a failed attempt.
      this.record(`K ${rid} ${errorMessage(err).replace(/\n/g, ' ')}`);
    }
  }

  /** Thread jobs: each Function step in the pool; progress lines as a job script would write. */
  private async runThreadJob(rid: string, dir: string, spec: JobSpec): Promise<void> {
    const abort = new AbortController();
    this.threadRuns.set(rid, abort);
    mkdirSync(dir, { recursive: true });
    this.pool ??= new Piscina({ filename: THREAD_TASK, maxThreads: Math.max(1, this.ctx.config.localMaxJobs), idleTimeout: 30_000 });
    this.record(`F ${rid} 0 ${Date.now()}`);
    let code = 0;
    const last = spec.order.length - 1;
    for (let i = 0; i <= last && code === 0; i++) {
      const step = spec.order[i];
      const task: ThreadTask = { jobDir: dir, step: i, logFile: join(dir, step.log ?? 'job.log') };
      try {
        await this.pool.run(task, { signal: abort.signal });
      } catch (err) {
        code = abort.signal.aborted ? 143 : 1;
        if (abort.signal.aborted) appendFileSync(join(dir, 'job.log'), `stopped: ${String(abort.signal.reason)}\n`);
        else if (!(err instanceof Error && err.stack)) appendFileSync(join(dir, 'job.log'), `${errorMessage(err)}\n`);
      }
      if (this.closing) break;
      if (i < last) this.record(`D ${rid} ${i} ${code} ${Date.now()}`);
    }
    this.threadRuns.delete(rid);
    // A run cut short because this starter is closing is left without an exit line: the
    // fetcher then sees an interrupted run of a gone epoch and queues it again.
    if (!this.closing) this.record(`X ${rid} ${code}`);
  }

  private record(line: string): void {
    appendFileSync(this.launcher.runLog, line + '\n');
  }

  /** Settle jobs that an earlier incarnation left in Starting. True when none is left pending. */
  private async recover(): Promise<boolean> {
    const ids = await this.store.redis.smembers(this.store.keys.starting);
    if (ids.length === 0) return true;
    const rows = await this.store.getFields(ids, ['state', 'run', 'runlog']);
    const logs = await this.store.redis.hgetall(this.store.keys.runlogs);
    const seen = new Map<string, { runs: Set<string>; done: boolean }>();
    let pending = false;
    for (let i = 0; i < ids.length; i++) {
      const [state, run, epoch] = rows[i];
      if (state !== 'granted' || !epoch || epoch === this.epoch) continue;
      let info = seen.get(epoch);
      if (!info) {
        info = readLauncherLog(logs[epoch] ?? runLogPath(this.ctx.config.stateDir, epoch));
        seen.set(epoch, info);
      }
      const rid = makeRunId(ids[i], Number(run));
      if (info.runs.has(rid)) continue; // launched (or failed to): the fetcher handles it
      if (!info.done) {
        pending = true; // that launcher may still start it; look again shortly
        continue;
      }
      const job = await this.store.relaunch(ids[i], Number(run), this.epoch);
      if (job) {
        this.ctx.log.info(`JobStarter: job ${job.id} run ${run} was never launched; launching it as run ${job.run}`);
        this.start(job);
      }
    }
    return !pending;
  }

  /** A new launcher and run log; the old launcher reaps its jobs and exits. */
  private async rotate(): Promise<void> {
    const epoch = String(await this.store.redis.incr(this.store.keys.epoch));
    const old = this.launcher;
    this.launcher = this.openLauncher(epoch);
    this.epoch = epoch;
    this.launches = 0;
    await this.store.redis.hset(this.store.keys.runlogs, epoch, this.launcher.runLog);
    old.close();
    this.ctx.send('fetcher', { type: 'epoch', epoch });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.waiter.close();
    this.launcher.close();
    await this.pool?.destroy();
    await this.store.close();
  }
}

/** Which runs a launcher's log shows as started (F) or failed to start (K), and whether it is done. */
function readLauncherLog(path: string): { runs: Set<string>; done: boolean } {
  const runs = new Set<string>();
  let done = false;
  let launcherPid: number | null = null;
  for (const event of new RunLogReader(path).readNew()) {
    if (event.kind === 'forked' || event.kind === 'notStarted') runs.add(event.runId);
    else if (event.kind === 'inputClosed' || event.kind === 'quit') done = true;
    else if (event.kind === 'launcher') launcherPid = event.pid;
  }
  if (!done) done = launcherPid === null || !processAlive(launcherPid);
  return { runs, done };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

runActor('starter', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor');
  return new Starter(ctx, store);
});

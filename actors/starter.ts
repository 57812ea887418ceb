import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './protocol.js';
import { parseGrantedPayload, Store, type TakenJob } from '../lib/store/store.js';
import { BlockingConnection } from '../lib/store/blocking.js';
import { Launcher } from '../lib/backends/local/launcher.js';
import { buildJobScript, GNU_CLOCK, INTERNAL_DIR, needsInternalDir, returnsData } from '../lib/backends/job-script.js';
import { writeJobFile } from '../lib/runtime/function-step.js';
import { RunLogReader, runId as makeRunId } from '../lib/runs/run-log.js';
import { jobDir, runLogPath, STEP_RUNNER, THREAD_TASK } from '../lib/runs/paths.js';
import { poolsFor } from '../lib/backends/placement.js';
import { parseJson } from '../lib/store/job-record.js';
import type { JobSpec } from '../lib/jobfile/job-spec.js';
import { errorMessage } from '../lib/util/errors.js';
import { HostRegistry } from '../lib/ssh/hosts.js';
import { SshPool } from '../lib/ssh/pool.js';
import { RemoteStarter } from '../lib/backends/remote/launch.js';
import { RemoteDispatch } from '../lib/backends/remote/dispatch.js';
import { jobEnvironment } from '../lib/backends/job-env.js';
import { processAlive } from '../lib/util/process.js';
import type { ThreadTask } from '../lib/backends/thread/thread-task.js';

// The JobStarter actor. It takes granted jobs from Granted_Queue (each entry carries all it needs
// to launch: id, run number, spec) and starts them by ClassType:
//   Local  -> a launch request to this incarnation's launcher, which forks the job's script;
//   Thread -> the job's Function steps, one after another, in a piscina pool.
// It does not wait for them: the fetcher learns that they started and ended from the run log.
//
// Taking is a pop (BLMPOP, many at once), so a starter that dies right after it leaves granted
// jobs that no queue holds. They are not lost: they still hold their slot, in state granted, with
// their run number. At start, recovery finds them and looks at the run logs of the older
// launchers: a run with an F (or K) line was launched and the fetcher takes it from there; a run
// without one, once every older launcher has closed its input (or died), provably never started
// and is launched again under a new run number. A run is never started twice.

const TAKE_BATCH = 64;
const IDLE_WAIT_MS = 5000;
/** After this many launches the starter moves to a new launcher and run log, so logs stay small. */
const LAUNCHES_PER_EPOCH = 50_000;

interface Orphan {
  id: string;
  run: number;
  /** local, or host:<name>. */
  host: string;
  spec: JobSpec | null;
}

class Starter implements Actor {
  private readonly blocking: BlockingConnection;
  private readonly hosts: HostRegistry;
  private readonly ssh: SshPool;
  private readonly remoteStarter: RemoteStarter;
  private readonly remote: RemoteDispatch;
  private launcher: Launcher;
  private epoch: string;
  private launches = 0;
  private pool: Piscina | null = null;
  private readonly threadRuns = new Map<string, AbortController>();
  private closing = false;

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
    storeId: string,
  ) {
    this.blocking = new BlockingConnection(ctx.redisUrl);
    this.hosts = new HostRegistry(ctx.config, store);
    this.ssh = new SshPool(this.hosts, ctx.config, ctx.log);
    this.remoteStarter = new RemoteStarter(this.ssh, { deployment: ctx.config.deployment, storeId }, ctx.log);
    this.remote = new RemoteDispatch(this.remoteStarter, this.hosts, store, (rid, reason) => this.record(`K ${rid} ${oneLine(reason)}`), (host) => ctx.send('fetcher', { type: 'launched', host }), ctx.log);
    this.epoch = ctx.epoch;
    mkdirSync(join(ctx.config.stateDir, 'runs'), { recursive: true, mode: 0o700 });
    mkdirSync(join(ctx.config.stateDir, 'jobs'), { recursive: true, mode: 0o700 });
    this.launcher = this.openLauncher(ctx.epoch);
  }

  private openLauncher(epoch: string): Launcher {
    return new Launcher(epoch, runLogPath(this.ctx.config.stateDir, epoch), this.ctx.log, (code) => {
      // The launcher only ends when told to; if it dies, this incarnation cannot start local
      // jobs any more. Exit, and let the supervisor start a fresh starter with a new launcher.
      this.ctx.log.error(`JobStarter: launcher ${epoch} exited (code ${code}); restarting the starter`);
      process.exit(71);
    });
  }

  async run(): Promise<void> {
    const { stop, log } = this.ctx;
    await this.store.redis.hset(this.store.keys.runlogs, this.epoch, this.launcher.runLog);
    log.info(`JobStarter: launcher ${this.epoch} (pid ${this.launcher.pid}) writing ${this.launcher.runLog}`);
    await this.hosts.refresh(true);
    let orphans = await this.findOrphans();
    while (!stop.stopped) {
      if (orphans.length) orphans = await this.recover(orphans);
      const busy = orphans.length > 0 || this.remote.waiting;
      const payloads = await this.blocking.popMany([this.store.keys.grantedQueue], TAKE_BATCH, busy ? 200 : IDLE_WAIT_MS, stop, 'RIGHT');
      for (const payload of payloads) {
        const job = parseGrantedPayload(payload);
        if (job) this.start(job);
        else this.ctx.log.warn(`JobStarter: dropped a Granted_Queue entry that is not a launch payload: ${JSON.stringify(payload.slice(0, 80))}`);
      }
      this.launcher.flush();
      if (this.remote.waiting) void this.remote.flush();
      if (this.launches >= LAUNCHES_PER_EPOCH) await this.rotate();
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
      if (!spec?.order) throw new Error('the job record has no usable spec');
      if (job.where.startsWith('host:')) {
        this.remote.add(job.where.slice(5), { id: job.id, run: job.run, attempt: job.attempt, spec, raw: parseJson(job.raw) });
        this.launches++;
        return;
      }
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
      this.record(`K ${rid} ${oneLine(errorMessage(err))}`);
    }
  }

  /** Thread jobs: each Function step in the pool; progress lines as a job script would write. */
  private async runThreadJob(rid: string, dir: string, spec: JobSpec): Promise<void> {
    const abort = new AbortController();
    this.threadRuns.set(rid, abort);
    mkdirSync(dir, { recursive: true });
    this.pool ??= new Piscina({ filename: THREAD_TASK, maxThreads: Math.max(1, this.ctx.config.localMaxJobs), idleTimeout: 30_000, env: jobEnvironment() as Record<string, string> });
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
        const why = abort.signal.aborted ? `stopped: ${String(abort.signal.reason)}` : errorMessage(err);
        appendFileSync(join(dir, 'job.log'), `${why}\n`);
      }
      if (this.closing) break;
      if (i < last) this.record(`D ${rid} ${i} ${code} ${Date.now()}`);
    }
    this.threadRuns.delete(rid);
    // A run cut short because this starter is closing gets no exit line: the fetcher then sees
    // an interrupted run of a gone epoch and queues it again.
    if (!this.closing) this.record(`X ${rid} ${code}${returnsData(spec) ? ' r' : ''}`);
  }

  private record(line: string): void {
    appendFileSync(this.launcher.runLog, line + '\n');
  }

  /** Granted jobs that no queue holds, left by an earlier starter (read before taking any). */
  private async findOrphans(): Promise<Orphan[]> {
    const k = this.store.keys;
    const members = new Set<string>();
    for (const pool of poolsFor(this.ctx.config, k, this.hosts)) for (const id of await this.store.redis.smembers(pool.slotKey)) members.add(id);
    if (members.size === 0) return [];
    const ids = [...members];
    const rows = await this.store.getFields(ids, ['state', 'run', 'host', 'spec']);
    const queued = new Set((await this.store.redis.lrange(k.grantedQueue, 0, -1)).map((p) => p.slice(0, p.indexOf('\n'))));
    return ids.flatMap((id, i) => {
      const [state, run, host, spec] = rows[i];
      if (state !== 'granted' || queued.has(id)) return [];
      return [{ id, run: Number(run), host: host ?? 'local', spec: parseJson(spec) as JobSpec | null }];
    });
  }

  /** Settles orphans where the logs (or, on a host, the claim files) allow it; returns the undecided. */
  private async recover(all: Orphan[]): Promise<Orphan[]> {
    const orphans = all.filter((o) => !o.host.startsWith('host:'));
    const pending = await this.recoverRemote(all.filter((o) => o.host.startsWith('host:')));
    const logs = await this.store.redis.hgetall(this.store.keys.runlogs);
    const older = Object.entries(logs).filter(([epoch]) => epoch !== this.epoch).map(([, path]) => readLauncherLog(path));
    const launched = new Set(older.flatMap((log) => [...log.runs]));
    const allDone = older.every((log) => log.done);
    for (const orphan of orphans) {
      if (launched.has(makeRunId(orphan.id, orphan.run))) continue; // the fetcher takes it from here
      if (!allDone) {
        pending.push(orphan); // an older launcher may still start it; look again shortly
        continue;
      }
      await this.relaunch(orphan);
    }
    this.launcher.flush();
    return pending;
  }

  private async relaunch(orphan: Orphan): Promise<void> {
    const job = await this.store.relaunch(orphan.id, orphan.run);
    if (job === 'cancelled') {
      this.record(`K ${makeRunId(orphan.id, orphan.run)} cancelled before it started`);
    } else if (job) {
      this.ctx.log.info(`JobStarter: job ${job.id} run ${orphan.run} was never launched; launching it as run ${job.run}`);
      this.start(job);
    }
  }

  /** Remote orphans: claim their runs on the host; a claim that succeeds proves no launch ran. */
  private async recoverRemote(orphans: Orphan[]): Promise<Orphan[]> {
    const pending: Orphan[] = [];
    const byHost = new Map<string, Orphan[]>();
    for (const orphan of orphans) byHost.set(orphan.host.slice(5), [...(byHost.get(orphan.host.slice(5)) ?? []), orphan]);
    for (const [host, list] of byHost) {
      try {
        const { neverStarted, started } = await this.remoteStarter.settleOrphans(host, list);
        for (const orphan of list) if (neverStarted.has(makeRunId(orphan.id, orphan.run))) await this.relaunch(orphan);
        // Runs that started: marked running with the pid from their claim, so that the fetcher
        // polls them even if their start line was never read (a no-op if it was).
        await this.store.markRunning(list.filter((o) => started.get(makeRunId(o.id, o.run))).map((o) => ({ id: o.id, run: o.run, pid: started.get(makeRunId(o.id, o.run))!, startedAt: Date.now(), epoch: o.host })));
      } catch (err) {
        this.ctx.log.warn(`JobStarter: cannot settle ${list.length} job(s) on ${host} yet: ${errorMessage(err)}`);
        pending.push(...list);
      }
    }
    if (this.remote.waiting) void this.remote.flush();
    return pending;
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
    this.ssh.closeAll();
    this.blocking.close();
    this.launcher.close();
    await this.pool?.destroy();
    await this.store.close();
  }
}

/** Which runs a launcher's log mentions at all (so they were launched), and whether it is done. */
function readLauncherLog(path: string): { runs: Set<string>; done: boolean } {
  const runs = new Set<string>();
  let done = false;
  let launcherPid: number | null = null;
  const reader = new RunLogReader(path);
  for (const event of reader.readNew()) {
    if ('runId' in event) runs.add(event.runId);
    else if (event.kind === 'inputClosed' || event.kind === 'quit') done = true;
    else if (event.kind === 'launcher') launcherPid = event.pid;
  }
  reader.close();
  if (!done) done = launcherPid === null || !processAlive(launcherPid);
  return { runs, done };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

runActor('starter', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor');
  return new Starter(ctx, store, await store.storeId());
});

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeJobFile } from '../../runtime/function-step.js';
import { jobDir, prepareJobDir, runLogPath, runsDir } from '../../runs/paths.js';
import { runId as makeRunId, RunLogReader } from '../../runs/run-log.js';
import { DIST_DIR } from '../../util/paths.js';
import { processAlive } from '../../util/process.js';
import { errorMessage } from '../../util/errors.js';
import type { GrantedRun, LaunchContext, LaunchSide, Orphan } from '../backend.js';
import { notStarted, relaunch } from '../granted.js';
import { buildJobScript, GNU_CLOCK, needsInternalDir } from '../job-script.js';
import { Launcher } from './launcher.js';

// Local jobs, the starter's half: each granted run becomes a launch request to this starter's
// launcher (launcher.ts), a small long-lived process that starts the job's sh script as a process
// group of its own and records each start (F) and end (R) in its run log; the script records its
// steps (D) and exit (X) there itself. The starter does not wait: the fetcher reads the log.
//
// Each launcher is an epoch (a number from Redis, Epoch): its run log is StateDir/runs/<epoch>.log,
// listed in Runlogs while it may hold runs not yet recorded. After LAUNCHES_PER_EPOCH launches the
// starter moves to new launchers, so that logs stay small; the old ones reap their jobs and exit.
//
// The starter keeps LAUNCHERS launchers and gives them runs in turn. A spawn holds its launcher
// until the child has exec'd (posix_spawn and node's spawn both wait for it): with one launcher,
// every start waited for the starts before it, and with node's spawn (a fork of a node process,
// its page tables copied, then torn down by the exec) the launcher, not the CPU, set the pace of
// short jobs. Two launchers wait for two execs at once.
//
// Recovery: a starter that died right after taking runs from Granted_Queue leaves them granted,
// holding their slots, in no queue. Such a run was launched if an older launcher's log mentions
// it (the fetcher takes it from there); if none does and every older launcher has closed its
// input (or died), it provably never started and is launched again under a new run number.

export const STEP_RUNNER = join(DIST_DIR, 'lib', 'runtime', 'step-runner.js');
const LAUNCHES_PER_EPOCH = 50_000;
/** Launchers a starter keeps, given runs in turn. */
const LAUNCHERS = 2;

export class LocalLaunch implements LaunchSide {
  private launches = 0;
  private rotating: Promise<void> | null = null;

  private constructor(
    private readonly ctx: LaunchContext,
    private launchers: Launcher[],
  ) {}

  static async open(ctx: LaunchContext): Promise<LocalLaunch> {
    mkdirSync(runsDir(ctx.config.stateDir), { recursive: true, mode: 0o700 });
    mkdirSync(join(ctx.config.stateDir, 'jobs'), { recursive: true, mode: 0o700 });
    return new LocalLaunch(ctx, await LocalLaunch.openLaunchers(ctx));
  }

  private static async openLaunchers(ctx: LaunchContext): Promise<Launcher[]> {
    const launchers: Launcher[] = [];
    for (let i = 0; i < LAUNCHERS; i++) {
      const launcher = await LocalLaunch.openLauncher(ctx);
      ctx.log.info(`JobStarter: launcher ${launcher.epoch} (pid ${launcher.pid}) writing ${launcher.runLog}`);
      launchers.push(launcher);
    }
    return launchers;
  }

  private static async openLauncher(ctx: LaunchContext): Promise<Launcher> {
    const epoch = await ctx.store.nextEpoch();
    const path = runLogPath(ctx.config.stateDir, epoch);
    // Listed before its first launch: a fetcher started later must know of it.
    await ctx.store.registerRunLog(epoch, path);
    const launcher = new Launcher(epoch, path, ctx.log, (code) => {
      // The launcher only ends when told to; if it dies, this starter cannot start local jobs any
      // more. It exits, and the supervisor starts a fresh starter with a new launcher.
      ctx.log.error(`JobStarter: launcher ${epoch} exited (code ${code}); restarting the starter`);
      process.exit(71);
    });
    ctx.runLogOpened(epoch, path);
    return launcher;
  }

  get busy(): boolean {
    return false;
  }

  start(run: GrantedRun): void {
    try {
      // The manager made the job's directory and log as it routed the job, and the launcher makes
      // them again if they are missing: only what Function steps and outputs need is made here.
      const internal = needsInternalDir(run.spec);
      const dir = internal ? prepareJobDir(this.ctx.config.stateDir, run.id, { internal }) : jobDir(this.ctx.config.stateDir, run.id);
      if (internal) writeJobFile(dir, { jobId: run.id, run: run.run, attempt: run.attempt, spec: run.spec, raw: run.raw });
      const rid = makeRunId(run.id, run.run);
      const launcher = this.launchers[this.launches % this.launchers.length];
      const script = buildJobScript(run.spec, {
        runId: rid, runLog: launcher.runLog, jobId: run.id, run: run.run, attempt: run.attempt, jobDir: dir,
        node: process.execPath, stepRunner: STEP_RUNNER, clock: GNU_CLOCK,
      });
      launcher.launch(rid, dir, script);
      this.launches++;
      this.ctx.log.debug(`JobStarter: started job ${run.id} run ${run.run} (Local)`, { job: run.id });
    } catch (err) {
      notStarted(this.ctx, run.id, run.run, errorMessage(err));
    }
  }

  flush(): void {
    for (const launcher of this.launchers) launcher.flush();
    if (this.launches >= LAUNCHES_PER_EPOCH * this.launchers.length && !this.rotating) {
      this.rotating = this.rotate().finally(() => (this.rotating = null));
    }
  }

  /** New launchers and run logs; the old launchers reap their jobs and exit. */
  private async rotate(): Promise<void> {
    const next = await LocalLaunch.openLaunchers(this.ctx);
    const old = this.launchers;
    this.launchers = next;
    this.launches = 0;
    for (const launcher of old) launcher.close();
  }

  async settle(orphans: Orphan[]): Promise<Orphan[]> {
    if (orphans.length === 0) return [];
    const logs = await this.ctx.store.runLogs();
    const current = new Set(this.launchers.map((launcher) => launcher.epoch));
    const older = [...logs].filter(([epoch]) => !current.has(epoch)).map(([, path]) => readLauncherLog(path));
    const launched = new Set(older.flatMap((log) => [...log.runs]));
    const allDone = older.every((log) => log.done);
    const pending: Orphan[] = [];
    for (const orphan of orphans) {
      if (orphan.state !== 'granted' || launched.has(makeRunId(orphan.id, orphan.run))) continue; // the fetcher takes it from here
      if (!allDone) {
        pending.push(orphan); // an older launcher may still start it; look again shortly
        continue;
      }
      const run = await relaunch(this.ctx, orphan);
      if (run) this.start(run);
    }
    this.flush();
    return pending;
  }

  async close(): Promise<void> {
    await this.rotating;
    for (const launcher of this.launchers) launcher.close();
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

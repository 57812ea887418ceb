import { mkdirSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { readReturnData } from '../../runtime/function-step.js';
import { stepLabels } from '../../runs/job-info.js';
import { explainEnd, type RunOutcome } from '../../runs/outcome.js';
import { jobDir, runsDir } from '../../runs/paths.js';
import { runId as makeRunId, RunLogReader } from '../../runs/run-log.js';
import { stepStates } from '../../runs/run-table.js';
import { errorMessage } from '../../util/errors.js';
import { isJobPid, processAlive } from '../../util/process.js';
import type { KillSignal, RunLogBatch, WatchContext, WatchedRun, WatchSide } from '../backend.js';

// Local jobs, the fetcher's half. It reads every launcher's run log (the current one and older
// ones with runs not yet recorded, listed in Runlogs), woken by fs.watch on the runs directory.
// A run's end is normally in its log (X from the job's script, R from its launcher). A run whose
// log is silent is asked about: is its process group alive? Is its launcher, which would record
// its end? Only when both are gone, and a read of the log begun after that check still shows no
// end, is the run lost.

const REFRESH_MS = 5000;

export class LocalWatch implements WatchSide {
  private readonly readers = new Map<string, RunLogReader>();
  private watcher: FSWatcher | null = null;
  private watchFailed = false;

  constructor(private readonly ctx: WatchContext) {
    this.watchRunsDir();
  }

  /** The runs directory is watched so that a new line wakes the fetcher at once. */
  private watchRunsDir(): void {
    try {
      // Made here too: the starter's launcher may not have made it yet (the actors start in any order).
      mkdirSync(runsDir(this.ctx.config.stateDir), { recursive: true, mode: 0o700 });
      this.watcher = watch(runsDir(this.ctx.config.stateDir), () => this.ctx.wake());
      this.watcher.on('error', (err) => this.watchLost(err));
    } catch (err) {
      this.watchLost(err);
    }
  }

  private watchLost(err: unknown): void {
    // Without it, new lines are still read at each refresh (every few seconds): slower, not wrong.
    if (!this.watchFailed) this.ctx.log.warn(`ResultFetcher: cannot watch ${runsDir(this.ctx.config.stateDir)} (${errorMessage(err)}); local jobs are noticed every ${REFRESH_MS / 1000}s instead`);
    this.watchFailed = true;
    this.watcher?.close();
    this.watcher = null;
  }

  /** A starter opened a new run log: read it from now on. */
  follow(epoch: string, path: string): void {
    if (!this.readers.has(epoch)) this.readers.set(epoch, new RunLogReader(path));
  }

  async refresh(): Promise<{ ended: []; nextInMs: number }> {
    for (const [epoch, path] of await this.ctx.store.runLogs()) this.follow(epoch, path);
    if (this.watchFailed && !this.watcher) this.watchRunsDir();
    return { ended: [], nextInMs: REFRESH_MS };
  }

  drain(): RunLogBatch[] {
    const batches: RunLogBatch[] = [];
    for (const [epoch, reader] of this.readers) {
      const events = reader.readNew();
      if (events.length) batches.push({ source: epoch, events });
    }
    return batches;
  }

  /** A run log whose launcher has quit and whose runs are all recorded is deleted. */
  async commit(): Promise<void> {
    const { table, store } = this.ctx;
    for (const [epoch, reader] of this.readers) {
      const launcher = table.launchers.get(epoch);
      if (!launcher?.quit || launcher.openRuns.size > 0) continue;
      await store.forgetRunLog(epoch);
      try {
        unlinkSync(reader.path);
      } catch {
        // already gone
      }
      reader.close();
      this.readers.delete(epoch);
      table.forgetEpoch(epoch);
    }
  }

  async observe(runs: WatchedRun[]): Promise<Map<string, RunOutcome>> {
    const ended = new Map<string, RunOutcome>();
    for (const run of runs) if (this.lost(run)) ended.set(run.info.id, this.lostOutcome(run));
    return ended;
  }

  private lost({ info, log }: WatchedRun): boolean {
    const pid = log?.pid ?? info.pid;
    if (!isJobPid(pid)) return false; // not started yet: the starter settles runs that never launched
    if (processAlive(-pid)) return false;
    const epoch = log?.epoch ?? info.runlog;
    const launcher = epoch ? this.ctx.table.launchers.get(epoch) : undefined;
    if (launcher && !launcher.quit && launcher.pid && processAlive(launcher.pid)) return false; // it will record the exit
    // Both gone: every line they were to write is in the run log, but maybe not read yet. The job
    // can end, and its launcher (one whose starter is gone) write R and Q and exit, all between
    // the fetcher's last read and this check: two runs that ended well were recorded as lost so
    // (chaos run, seed 1010). Lost only if a read of the log begun after this check shows no end.
    const table = this.ctx.table;
    const rid = makeRunId(info.id, info.run);
    const checkedAt = table.unexplained.get(rid);
    if (checkedAt === undefined) table.unexplained.set(rid, table.reads);
    return checkedAt !== undefined && table.reads > checkedAt;
  }

  private lostOutcome({ info, log }: WatchedRun): RunOutcome {
    const steps = log ? stepStates(log, stepLabels(info.spec)) : [];
    const reason = explainEnd(info, 'its processes ended without recording an exit status (their launcher was killed)');
    return { kind: 'failed', exitCode: null, reason, steps, startedAt: log?.forkedAt ?? info.startedAt };
  }

  kill({ info, log }: WatchedRun, signal: KillSignal, reason: string): void {
    const pid = log?.pid ?? info.pid;
    if (!isJobPid(pid)) return;
    try {
      process.kill(-pid, signal);
      this.ctx.log.info(`ResultFetcher: job ${info.id}: ${signal} to process group ${pid} (${reason})`, { job: info.id });
    } catch {
      // already gone
    }
  }

  async collect({ info, log }: WatchedRun, outcome: RunOutcome): Promise<unknown> {
    const spec = info.spec;
    if (!spec || outcome.kind !== 'succeeded' || log?.returnsData === false) return null;
    const last = spec.order.length - 1;
    try {
      return readReturnData(jobDir(this.ctx.config.stateDir, info.id), spec.order[last], last);
    } catch (err) {
      this.ctx.log.warn(`ResultFetcher: job ${info.id}: cannot read its return data (${errorMessage(err)})`, { job: info.id });
      return null;
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    for (const reader of this.readers.values()) reader.close();
    this.readers.clear();
  }
}

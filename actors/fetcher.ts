import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './protocol.js';
import { Store, type GrantPool } from '../lib/store/store.js';
import type { BlockingConnection } from '../lib/store/blocking.js';
import { StopSignal, Wakeup } from '../lib/util/stop-signal.js';
import { formatDuration } from '../lib/util/duration.js';
import { errorMessage } from '../lib/util/errors.js';
import { runId as makeRunId } from '../lib/runs/run-log.js';
import { RunTable, stepStates, type RunState } from '../lib/runs/run-table.js';
import { loadJobInfo, stepLabels } from '../lib/runs/job-info.js';
import { loggedOutcome, type RunOutcome } from '../lib/runs/outcome.js';
import { RunRecorder } from '../lib/runs/recorder.js';
import { backendOf, type BackendKind, type WatchContext, type WatchedRun, type WatchSide } from '../lib/backends/backend.js';
import { poolsFor } from '../lib/backends/placement.js';
import { LocalWatch } from '../lib/backends/local/watch.js';
import { ThreadWatch } from '../lib/backends/thread/watch.js';
import { RemoteWatch } from '../lib/backends/remote/watch.js';

// The ResultFetcher actor. It keeps Running_Queue (score = the next time to look at a job) and
// sleeps exactly until the earliest job is due or something reports: a run log line (a job
// started, finished a step, exited), a Signal:fetcher token (a cancel), a message. Then it asks
// each run's backend (lib/backends) how it stands, collects the return data of runs that
// succeeded (getReturnData) and records each end with finishRun (slot freed and handed to the
// next waiting job, retry queued, or final state) in one step.
//
//   run logs (local: fs.watch; remote: tail -F) ─┐
//   Signal:fetcher ──────────────────────────────┼─> wakeup ─> new log lines ─> markRunning / finishRun
//   messages from the starter ───────────────────┘            due jobs ─> observe, or kill on timeout / cancel
//
// A run that exited 0 and leaves no return data is recorded from its run log lines alone (no
// read of the job record): at thousands of short jobs a second, that is most of them. Thread
// runs are recorded by the starter that runs them; only their Timeout and cancel are decided here.

const MAX_WAIT_MS = 5000;
const DUE_BATCH = 500;
// A run is marked running as soon as its start is read (there was a 50 ms hold here, only so
// that short jobs went from granted to their end in one step: `running` came 50 ms late). A run
// whose start and end come in one read is still recorded in one step (see RunRecorder).
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
  private readonly recorder: RunRecorder;
  private readonly local: LocalWatch;
  private readonly remote: RemoteWatch;
  private readonly watches: Record<BackendKind, WatchSide>;
  private pools: GrantPool[];
  /** When the earliest job in Running_Queue is due (a cache: Redis holds the truth). */
  private nextDueAt = 0;
  /** When each backend wants its refresh() called again. */
  private readonly refreshAt = new Map<BackendKind, number>();

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
    storeId: string,
  ) {
    this.blocking = store.blocking(ctx.log);
    const watch: WatchContext = { config: ctx.config, store, log: ctx.log, table: this.table, wake: () => this.wakeup.trigger() };
    this.local = new LocalWatch(watch);
    this.remote = new RemoteWatch(watch, { deployment: ctx.config.deployment, storeId });
    const thread = new ThreadWatch((id, run, reason) => ctx.send('starter', { type: 'abort', id, run, reason }));
    this.watches = { local: this.local, thread, remote: this.remote };
    this.pools = poolsFor(ctx.config);
    this.recorder = new RunRecorder(store, () => this.pools, ctx.log, 'ResultFetcher', ctx.config.retryBackoffMs);
  }

  async run(): Promise<void> {
    const { stop, log } = this.ctx;
    void this.listenForSignals(stop);
    log.info('ResultFetcher: watching Running_Queue and the run logs');
    let lastIngest = 0;
    while (!stop.stopped) {
      const refreshIn = await this.refresh();
      const gap = Date.now() - lastIngest;
      if (gap < MIN_INGEST_GAP_MS) await stop.sleep(MIN_INGEST_GAP_MS - gap);
      lastIngest = Date.now();
      await this.ingest();
      if (Date.now() >= this.nextDueAt && (await this.pollDue())) continue;
      await this.wakeup.wait(Math.min(this.nextDueAt - Date.now(), refreshIn, MAX_WAIT_MS), stop);
    }
  }

  handle(message: ToActor): void {
    if (message.type === 'runLog') this.local.follow(message.epoch, message.path);
    if (message.type === 'launched') {
      this.remote.launchedOn(message.host);
      this.refreshAt.set('remote', 0);
    }
    this.wakeup.trigger();
  }

  /** Each backend's upkeep, when it is due; runs it found ended are recorded. Returns ms until the next. */
  private async refresh(): Promise<number> {
    const now = Date.now();
    let next = Infinity;
    for (const [kind, watch] of Object.entries(this.watches) as [BackendKind, WatchSide][]) {
      if ((this.refreshAt.get(kind) ?? 0) > now) {
        next = Math.min(next, this.refreshAt.get(kind)! - now);
        continue;
      }
      const { ended, nextInMs } = await watch.refresh();
      this.refreshAt.set(kind, now + nextInMs);
      next = Math.min(next, nextInMs);
      for (const run of ended) this.recorder.end(run.id, run.run, run.outcome);
    }
    this.pools = poolsFor(this.ctx.config, this.remote.fleet.hosts);
    await this.recorder.flush();
    return next;
  }

  /** Signal:fetcher tokens (a cancel changed Running_Queue) wake the main loop and make it look. */
  private async listenForSignals(stop: StopSignal): Promise<void> {
    while (!stop.stopped) {
      if (await this.blocking.waitForSignal('fetcher', MAX_WAIT_MS, stop)) {
        this.nextDueAt = 0;
        this.wakeup.trigger();
      }
    }
  }

  /** New run log lines: starts, step progress, ends. */
  private async ingest(): Promise<void> {
    this.table.reads++;
    const stepped: RunState[] = [];
    const ended: { run: RunState; kind: BackendKind }[] = [];
    const now = Date.now();
    for (const kind of ['local', 'remote'] as const) {
      for (const { source, events } of this.watches[kind].drain()) {
        const changes = this.table.apply(source, events);
        for (const run of changes.started) {
          if (run.endedAt === null && run.pid !== null) this.recorder.start({ id: run.jobId, run: run.run, pid: run.pid, startedAt: run.forkedAt ?? now, epoch: source });
        }
        stepped.push(...changes.stepped.filter((run) => run.endedAt === null));
        ended.push(...changes.ended.filter((run) => !run.recorded).map((run) => ({ run, kind })));
      }
    }
    if (this.recorder.pending === 0 && stepped.length === 0 && ended.length === 0) return;
    const recorded = await this.endLogged(ended);
    const [earliest] = await Promise.all([this.recorder.flush(), this.saveProgress(stepped)]);
    for (const runId of recorded) this.table.recorded(runId);
    if (earliest !== null) this.nextDueAt = Math.min(this.nextDueAt, earliest);
    for (const kind of ['local', 'remote'] as const) await this.watches[kind].commit();
  }

  /**
   * Runs whose log recorded their end: their outcome is in the log. A run that exited 0 and leaves
   * no return data is recorded from the log alone; the others need their job record (and, when
   * they succeeded, their return data). Returns the runs handed to the recorder.
   */
  private async endLogged(ended: { run: RunState; kind: BackendKind }[]): Promise<string[]> {
    if (ended.length === 0) return [];
    const recorded: string[] = [];
    const slow: typeof ended = [];
    for (const entry of ended) {
      if (entry.run.exitCode === 0 && !entry.run.returnsData) {
        this.recorder.end(entry.run.jobId, entry.run.run, loggedOutcome(entry.run, null, []));
        recorded.push(entry.run.runId);
      } else {
        slow.push(entry);
      }
    }
    const infos = await loadJobInfo(this.store, slow.map(({ run }) => run.jobId));
    await Promise.all(slow.map(async ({ run, kind }) => {
      const info = infos.get(run.jobId);
      // A replayed line for a run that is not the job's current one changes nothing.
      if (!info || info.run !== run.run || !['granted', 'running'].includes(info.state)) {
        recorded.push(run.runId);
        return;
      }
      if (await this.end({ info, log: run }, kind, loggedOutcome(run, info, stepLabels(info.spec)))) recorded.push(run.runId);
    }));
    return recorded;
  }

  /**
   * Hands an ended run to the recorder, with what its backend collects (return data; remote
   * Downloads, of failed runs too). False when that cannot be read yet (its host does not
   * answer): the run is looked at again later.
   */
  private async end(run: WatchedRun, kind: BackendKind, outcome: RunOutcome): Promise<boolean> {
    let result: unknown = null;
    if (outcome.kind === 'succeeded' || outcome.kind === 'failed') {
      try {
        result = await this.watches[kind].collect(run, outcome);
      } catch (err) {
        this.ctx.log.warn(`ResultFetcher: job ${run.info.id}: cannot collect its results yet (${errorMessage(err)}); trying again in ${formatDuration(run.info.pollMs)}`, { job: run.info.id });
        // Made running (if it went from granted to its end unseen) so that a later look finds it.
        if (run.info.state === 'granted') this.recorder.start({ id: run.info.id, run: run.info.run, pid: run.log?.pid ?? 0, startedAt: run.log?.forkedAt ?? Date.now(), epoch: run.log?.epoch ?? '' });
        return false;
      }
    }
    this.recorder.end(run.info.id, run.info.run, outcome, result);
    return true;
  }

  /** Step progress of running jobs, for `show`. */
  private async saveProgress(runs: RunState[]): Promise<void> {
    if (runs.length === 0) return;
    // Labels are left out: `show` takes them from the spec.
    await this.store.saveProgress(runs.map((run) => ({ id: run.jobId, run: run.run, steps: stepStates(run, []) })));
  }

  /** Jobs whose time has come: ended? past the deadline? cancelled? True if there may be more. */
  private async pollDue(): Promise<boolean> {
    const now = Date.now();
    const ids = await this.store.dueRunning(now, DUE_BATCH);
    const infos = await loadJobInfo(this.store, ids);
    await this.store.dropFromRunning(ids.filter((id) => infos.get(id)?.state !== 'running'));
    const byKind = new Map<BackendKind, WatchedRun[]>();
    const loggedEnds: { run: WatchedRun; kind: BackendKind }[] = [];
    for (const info of infos.values()) {
      if (info.state !== 'running') continue;
      const run: WatchedRun = { info, log: this.table.runs.get(makeRunId(info.id, info.run)) };
      const kind = backendOf(info.classType, info.host);
      // Ended by its log but not recorded yet (its results could not be collected): again now.
      if (run.log?.endedAt !== null && run.log?.endedAt !== undefined) loggedEnds.push({ run, kind });
      else byKind.set(kind, [...(byKind.get(kind) ?? []), run]);
    }
    const going: WatchedRun[] = [];
    for (const { run, kind } of loggedEnds) {
      if (await this.end(run, kind, loggedOutcome(run.log!, run.info, stepLabels(run.info.spec)))) this.table.recorded(run.log!.runId);
      else going.push(run);
    }
    for (const [kind, runs] of byKind) {
      let ended = new Map<string, RunOutcome>();
      try {
        ended = await this.watches[kind].observe(runs);
      } catch (err) {
        this.ctx.log.warn(`ResultFetcher: cannot look at ${runs.length} ${kind} job(s) now (${errorMessage(err)}); trying again next poll`);
      }
      for (const run of runs) {
        const outcome = ended.get(run.info.id);
        if (!outcome || !(await this.end(run, kind, outcome))) going.push(run);
      }
    }
    await this.enforceLimits(going, now);
    await this.recorder.flush();
    this.nextDueAt = (await this.store.nextDueAt()) ?? Date.now() + MAX_WAIT_MS;
    return ids.length === DUE_BATCH;
  }

  /** Cancel and Timeout of runs still going: TERM to the process group, KILL after KillGrace. */
  private async enforceLimits(runs: WatchedRun[], now: number): Promise<void> {
    const verdicts = await this.store.enforceLimits(runs.map((r) => ({ id: r.info.id, run: r.info.run })), now, this.ctx.config.killGraceMs);
    const byId = new Map(runs.map((r) => [r.info.id, r]));
    for (const verdict of verdicts) {
      const run = byId.get(verdict.id);
      if (!run || !verdict.signal) continue;
      const reason = verdict.reason === 'timed out' ? `timed out after ${formatDuration(run.info.timeoutMs ?? 0)}` : verdict.reason ?? '';
      this.watches[backendOf(run.info.classType, run.info.host)].kill(run, verdict.signal, reason);
    }
  }

  async close(): Promise<void> {
    for (const watch of Object.values(this.watches)) await watch.close();
    this.blocking.close();
    await this.recorder.flush();
    await this.store.close();
    this.ctx.log.info(`ResultFetcher: stopped after recording ${this.recorder.endedCount} runs`);
  }
}

runActor('fetcher', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor', { node: ctx.config.nodeName });
  return new Fetcher(ctx, store, await store.storeId());
});

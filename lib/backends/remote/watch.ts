import { loadJobInfo, stepLabels, type JobInfo } from '../../runs/job-info.js';
import { explainEnd, type RunOutcome } from '../../runs/outcome.js';
import { runId as makeRunId } from '../../runs/run-log.js';
import { stepStates } from '../../runs/run-table.js';
import { errorMessage } from '../../util/errors.js';
import { isJobPid } from '../../util/process.js';
import type { EndedRun, KillSignal, RunLogBatch, WatchContext, WatchedRun, WatchSide } from '../backend.js';
import { collectRemote } from './collect.js';
import { RemoteFleet } from './fleet.js';
import { remoteBase, remoteJobDir, type RemoteScope } from './paths.js';
import { reconcileHost } from './reconcile.js';
import { formatDuration } from '../../util/duration.js';
import { instanceHostName } from '../ec2/instances.js';

// Remote jobs (and EC2 jobs on their instance), the fetcher's half. The fleet (fleet.ts) follows
// the run log of every host with jobs over its pooled SSH connection, so starts, steps and exits
// arrive as they happen, and renews each host's lease on the same channel (lease.ts). A run
// whose log has been silent for its poll period is polled (one command per host per round).
//
// A host that cannot be reached means "state unknown": nothing is decided until it answers, or
// until it has been unreachable for HostDownAfter: then it is marked down (no new jobs), and its
// runs are given up on -- never before the fence bound F has passed since the last renewal or
// launch there (so they have surely stopped themselves: lease.ts), and each run once the wait
// its job asks for (LostAfter) is over:
//   Hostname: any, EC2   LostAfter 0: given up on at once, queued again without using a retry
//                        (the host failed, not the job), so it runs on another host;
//   one named host       LostAfter 1h: waited for (its run, stopped by its lease, goes on when
//                        the host is back), then failed with the reason (a retry, if it has one,
//                        waits for that host);
//   granted, not running the launch may never have reached the host: given up on at once, as
//                        Hostname: any jobs are (failed, for a named host).
// When a host answers again, its runs are reconciled (reconcile.ts): stopped runs still current
// go on, runs given up on are killed and recorded as fenced.

const REFRESH_MS = 1000;
/** How long a run on a named host that stops answering is waited for, unless its job says (LostAfter). */
export const NAMED_HOST_LOST_AFTER_MS = 3_600_000;

export class RemoteWatch implements WatchSide {
  readonly fleet: RemoteFleet;
  private refreshedAt = 0;

  constructor(
    private readonly ctx: WatchContext,
    private readonly scope: RemoteScope,
  ) {
    this.fleet = new RemoteFleet(ctx.config, ctx.store, ctx.log, () => ctx.wake(), scope);
  }

  /** Runs were launched on this host: follow its run log now if it is not followed yet. */
  launchedOn(host: string): void {
    if (!this.fleet.follows(host)) this.refreshedAt = 0;
  }

  async refresh(): Promise<{ ended: EndedRun[]; nextInMs: number }> {
    const due = this.refreshedAt + REFRESH_MS - Date.now();
    // Hosts that are gone still count while they are unreachable: their runs are yet to be given up on.
    const watching = () => this.fleet.hosts.all().length > 0 || this.fleet.unreachable().length > 0 || this.fleet.hosts.down().length > 0;
    const nextInMs = () => (watching() ? REFRESH_MS : Infinity);
    if (due > 0 && this.fleet.reconcilesDue().length === 0) return { ended: [], nextInMs: watching() ? due : Infinity };
    const force = this.refreshedAt === 0;
    this.refreshedAt = Date.now();
    await this.fleet.refresh(force);
    // Reconciles come before give-ups, and give-ups are recorded before the next refresh: a
    // reconcile never lets a run go on that a give-up not yet recorded has ended.
    for (const host of this.fleet.reconcilesDue()) await this.reconcile(host);
    await this.fleet.newlyDown();
    const ended: EndedRun[] = [];
    const unreachable = this.fleet.unreachable().filter(({ host }) => this.fleet.hosts.isDown(host));
    if (unreachable.length) {
      const launched = await this.ctx.store.launchLeases();
      for (const down of unreachable) ended.push(...(await this.giveUpOn(down, launched.get(down.host) ?? 0)));
    }
    return { ended, nextInMs: nextInMs() };
  }

  private async reconcile(host: string): Promise<void> {
    const asked = this.fleet.reconcileAskedAt(host) ?? 0;
    try {
      await reconcileHost(this.fleet.pool.connection(host), this.ctx.store, host, remoteBase(this.scope, host), this.ctx.log);
      this.fleet.reconciled(host, asked);
    } catch (err) {
      this.ctx.log.warn(`ResultFetcher: cannot reconcile the runs on ${host} yet: ${errorMessage(err)}`);
    }
  }

  /**
   * The runs of a host marked down that may be given up on now: their lease has surely run out
   * (the fence bound since the last renewal or launch there), and they have been waited for as
   * long as their job asks (LostAfter).
   */
  private async giveUpOn(down: { host: string; since: number; reason: string }, launchLease: number): Promise<EndedRun[]> {
    const now = Date.now();
    const { host } = down;
    // An EC2 instance that is no longer among the instances (EC2 said it is gone: its record was
    // forgotten, or is being given up as lost) runs nothing any more: no bound to wait for.
    const ended = host.startsWith(instanceHostName('')) && !this.fleet.hosts.get(host);
    const stoppedBy = ended ? 0 : this.fleet.lastRenewal(host, launchLease) + this.fleet.lease.fenceBoundMs;
    if (now < stoppedBy) return [];
    const infos = await loadJobInfo(this.ctx.store, await this.ctx.store.slotHolders(`host:${host}`));
    const away = now - down.since;
    const reason = `host ${host} unreachable for ${formatDuration(away)} (${down.reason})`;
    const given: EndedRun[] = [];
    for (const info of infos.values()) {
      if (info.state !== 'granted' && info.state !== 'running') continue;
      const anywhere = info.location === 'any' || Boolean(info.location?.startsWith('ec2:'));
      const lostAfter = info.state === 'granted' ? 0 : info.spec?.remote?.lostAfterMs ?? (anywhere ? 0 : NAMED_HOST_LOST_AFTER_MS);
      if (away < lostAfter) continue;
      const outcome: RunOutcome = anywhere
        ? { kind: 'interrupted', reason: `${reason}: run again elsewhere`, steps: [], startedAt: info.startedAt }
        : { kind: 'failed', exitCode: null, reason, steps: [], startedAt: info.startedAt };
      given.push({ id: info.id, run: info.run, outcome });
    }
    return given;
  }

  drain(): RunLogBatch[] {
    return this.fleet.drain();
  }

  async commit(): Promise<void> {
    await this.fleet.saveOffsets();
  }

  async observe(runs: WatchedRun[]): Promise<Map<string, RunOutcome>> {
    const ended = new Map<string, RunOutcome>();
    const polls = await this.fleet.poll(runs.map((r) => r.info));
    for (const { info, log } of runs) {
      const poll = polls.get(makeRunId(info.id, info.run));
      if (!poll || poll.kind === 'alive') continue;
      const steps = log ? stepStates(log, stepLabels(info.spec)) : [];
      const startedAt = log?.forkedAt ?? info.startedAt;
      if (poll.kind === 'exited' && poll.exitCode === 0) ended.set(info.id, { kind: 'succeeded', steps, startedAt });
      else if (poll.kind === 'exited') ended.set(info.id, { kind: 'failed', exitCode: poll.exitCode, reason: explainEnd(info, `the job exited with code ${poll.exitCode}`), steps, startedAt });
      else ended.set(info.id, { kind: 'failed', exitCode: null, reason: explainEnd(info, `its processes on ${hostOf(info)} ended without recording an exit status (killed?)`), steps, startedAt });
    }
    return ended;
  }

  kill({ info, log }: WatchedRun, signal: KillSignal, reason: string): void {
    const pid = log?.pid ?? info.pid;
    const host = hostOf(info);
    if (!isJobPid(pid) || !host) return;
    const name = signal.slice(3);
    this.fleet.pool
      .connection(host)
      .exec(`kill -${name} -${pid} 2>/dev/null || kill -${name} ${pid} 2>/dev/null; exit 0`)
      .then(
        () => this.ctx.log.info(`ResultFetcher: job ${info.id}: ${signal} to process group ${pid} on ${host} (${reason})`, { job: info.id }),
        (err) => this.ctx.log.warn(`ResultFetcher: job ${info.id}: could not signal it on ${host}: ${errorMessage(err)}`, { job: info.id }),
      );
  }

  async collect({ info, log }: WatchedRun, outcome: RunOutcome): Promise<unknown> {
    const host = hostOf(info);
    if (!info.spec || !host) return null;
    const run = { id: info.id, run: info.run, spec: info.spec, remoteDir: remoteJobDir(this.scope, host, info.id, info.spec), notStarted: Boolean(log?.notStarted) };
    const { config, store } = this.ctx;
    return collectRemote(this.fleet.pool.connection(host), run, outcome, { stateDir: config.stateDir, downloadsOn: config.downloadsOn, store, log: this.ctx.log });
  }

  async close(): Promise<void> {
    this.fleet.close();
  }
}

function hostOf(info: JobInfo): string | null {
  return info.host?.startsWith('host:') ? info.host.slice(5) : null;
}

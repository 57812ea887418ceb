import { loadJobInfo, stepLabels, type JobInfo } from '../../runs/job-info.js';
import { explainEnd, type RunOutcome } from '../../runs/outcome.js';
import { runId as makeRunId } from '../../runs/run-log.js';
import { stepStates } from '../../runs/run-table.js';
import { errorMessage } from '../../util/errors.js';
import { isJobPid } from '../../util/process.js';
import type { EndedRun, KillSignal, RunLogBatch, WatchContext, WatchedRun, WatchSide } from '../backend.js';
import { collectRemote } from './collect.js';
import { RemoteFleet } from './fleet.js';
import { remoteJobDir, type RemoteScope } from './paths.js';

// Remote jobs (and EC2 jobs on their instance), the fetcher's half. The fleet (fleet.ts) follows
// the run log of every host with jobs over its pooled SSH connection, so starts, steps and exits
// arrive as they happen. A run whose log has been silent for its poll period is polled (one
// command per host per round). A host that cannot be reached means "state unknown": nothing is
// decided until it answers, or until it has been unreachable for HostDownAfter: then it is
// marked down and its runs end here — a job that may run on any host (Hostname: any, EC2) is
// queued again without using a retry (the host failed, not the job), one bound to it fails.

const REFRESH_MS = 1000;

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
    const nextInMs = () => (this.fleet.hosts.all().length ? REFRESH_MS : Infinity);
    if (due > 0) return { ended: [], nextInMs: this.fleet.hosts.all().length ? due : Infinity };
    const force = this.refreshedAt === 0;
    this.refreshedAt = Date.now();
    await this.fleet.refresh(force);
    const ended: EndedRun[] = [];
    for (const { host, reason } of await this.fleet.newlyDown()) ended.push(...(await this.giveUpOn(host, reason)));
    return { ended, nextInMs: nextInMs() };
  }

  /** The runs of a host marked down end here. */
  private async giveUpOn(host: string, reason: string): Promise<EndedRun[]> {
    const infos = await loadJobInfo(this.ctx.store, await this.ctx.store.slotHolders(`host:${host}`));
    return [...infos.values()]
      .filter((info) => info.state === 'granted' || info.state === 'running')
      .map((info) => {
        const anywhere = info.location === 'any' || Boolean(info.location?.startsWith('ec2:'));
        const outcome: RunOutcome = anywhere
          ? { kind: 'interrupted', reason, steps: [], startedAt: info.startedAt }
          : { kind: 'failed', exitCode: null, reason, steps: [], startedAt: info.startedAt };
        return { id: info.id, run: info.run, outcome };
      });
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

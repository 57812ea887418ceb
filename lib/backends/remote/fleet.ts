import type { Config } from '../../config/config.js';
import type { Logger } from '../../util/log.js';
import { formatDuration } from '../../util/duration.js';
import { errorMessage } from '../../util/errors.js';
import type { Store } from '../../store/store.js';
import { HostRegistry } from '../../ssh/hosts.js';
import { SshPool } from '../../ssh/pool.js';
import { RemoteLogFollower } from './follower.js';
import { parsePolls, pollScript, type RemotePoll } from './polls.js';
import type { JobInfo } from '../../runs/job-info.js';
import { runId as makeRunId } from '../../runs/run-log.js';
import { remoteJobDir, remoteRunLog, type RemoteScope } from './paths.js';
import type { RunLogEvent } from '../../runs/run-log.js';

// The fetcher's view of the SSH hosts: one run log follower per host that has jobs, the batched
// polls (one command per host per round, however many jobs), and each host's reachability. A
// host that cannot be reached for HostDownAfter is reported down, once.

export class RemoteFleet {
  readonly hosts: HostRegistry;
  readonly pool: SshPool;
  private readonly followers = new Map<string, RemoteLogFollower>();
  private buffered: { source: string; events: RunLogEvent[]; host: string; offset: number }[] = [];
  private readonly unreachableSince = new Map<string, { since: number; reason: string }>();
  private readonly savedOffsets = new Map<string, number>();

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly onActivity: () => void,
    private readonly scope: RemoteScope,
  ) {
    this.hosts = new HostRegistry(config, store);
    this.pool = new SshPool(this.hosts, config, log);
  }

  /**
   * Follows the run log of every host that has a slot taken (a job granted or running there), and
   * of every host marked down: its follower, trying again and again, is what sees it answer and
   * marks it up. A down host has no slot taken (its jobs were given up on), so a fetcher started
   * after it went down followed nothing there, never saw it come back, and the jobs that name it
   * waited for ever (chaos run, seed 22).
   */
  async refresh(force = false): Promise<void> {
    await this.hosts.refresh(force);
    const hosts = this.hosts.all();
    if (hosts.length === 0) return;
    const [taken, offsets] = await Promise.all([this.store.slotsUsed(hosts.map((h) => `host:${h.name}`)), this.store.remoteLogOffsets()]);
    hosts.forEach((host, i) => {
      const busy = taken[i] > 0;
      if ((busy || this.hosts.isDown(host.name)) && !this.followers.has(host.name)) this.follow(host.name, offsets.get(host.name) ?? 0);
    });
  }

  /** Whether this host's run log is followed. */
  follows(host: string): boolean {
    return this.followers.has(host);
  }

  private follow(name: string, offset: number): void {
    this.savedOffsets.set(name, offset);
    const follower = new RemoteLogFollower(name, this.pool.connection(name), remoteRunLog(this.scope, name), offset, {
      events: (events, at) => {
        this.buffered.push({ source: `host:${name}`, events, host: name, offset: at });
        this.onActivity();
      },
      reachable: (ok, reason) => this.reachable(name, ok, reason),
    }, this.log);
    this.followers.set(name, follower);
  }

  /** Run log events that arrived since the last call. */
  drain(): { source: string; events: RunLogEvent[] }[] {
    const drained = this.buffered;
    this.buffered = [];
    for (const chunk of drained) this.pendingOffsets.set(chunk.host, chunk.offset);
    return drained;
  }

  private readonly pendingOffsets = new Map<string, number>();

  /** Records how far each host's log has been processed (call after processing what drain gave). */
  async saveOffsets(): Promise<void> {
    const changed = [...this.pendingOffsets].filter(([host, offset]) => this.savedOffsets.get(host) !== offset);
    this.pendingOffsets.clear();
    if (changed.length === 0) return;
    await this.store.saveRemoteLogOffsets(new Map(changed));
    for (const [host, offset] of changed) this.savedOffsets.set(host, offset);
  }

  /** Polls the given remote runs, one command per host: their state by run id (none for a host that did not answer). */
  async poll(jobs: JobInfo[]): Promise<Map<string, RemotePoll>> {
    const polls = new Map<string, RemotePoll>();
    const byHost = new Map<string, JobInfo[]>();
    for (const job of jobs) {
      const host = job.host?.startsWith('host:') ? job.host.slice(5) : null;
      if (host && job.pid) byHost.set(host, [...(byHost.get(host) ?? []), job]);
    }
    await Promise.all([...byHost].map(async ([host, list]) => {
      try {
        const result = await this.pool.connection(host).exec(pollScript(list.map((j) => ({ runId: makeRunId(j.id, j.run), pid: j.pid!, dir: remoteJobDir(this.scope, host, j.id, j.spec) }))));
        for (const [runId, poll] of parsePolls(result.stdout)) polls.set(runId, poll);
        this.reachable(host, true, null);
      } catch (err) {
        this.reachable(host, false, errorMessage(err));
      }
    }));
    return polls;
  }

  private reachable(host: string, ok: boolean, reason: string | null): void {
    if (ok) {
      if (this.unreachableSince.delete(host) || this.hosts.isDown(host)) {
        this.log.info(`ResultFetcher: host ${host} is reachable again`);
        // The manager grants to it again at once (its jobs may be waiting in its queue).
        void this.hosts.setState(host, 'up').then(() => this.store.signal('manager'));
      }
      return;
    }
    if (!this.unreachableSince.has(host)) {
      this.unreachableSince.set(host, { since: Date.now(), reason: reason ?? 'unreachable' });
      this.log.warn(`ResultFetcher: host ${host} is unreachable (${reason}); its jobs' state is unknown until it answers`);
    }
  }

  /** Hosts unreachable for longer than HostDownAfter and not yet marked down: marks them down. */
  async newlyDown(now = Date.now()): Promise<{ host: string; reason: string }[]> {
    const down: { host: string; reason: string }[] = [];
    for (const [host, { since, reason }] of this.unreachableSince) {
      if (now - since < this.config.hostDownAfterMs || this.hosts.isDown(host)) continue;
      const why = `host ${host} unreachable for ${formatDuration(now - since)} (${reason})`;
      await this.hosts.setState(host, 'down', why);
      this.log.error(`ResultFetcher: ${why}: marked down; it gets no new jobs until it answers again`);
      down.push({ host, reason: why });
    }
    return down;
  }

  close(): void {
    for (const follower of this.followers.values()) follower.close();
    this.followers.clear();
    this.pool.closeAll();
  }
}

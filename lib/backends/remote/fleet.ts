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
import { remoteBase, remoteJobDir, remoteRunLog, type RemoteScope } from './paths.js';
import type { RunLogEvent } from '../../runs/run-log.js';
import { leaseTimes, type LeaseTimes } from './lease.js';
import type { UnreachableRecord } from '../../store/registry-records.js';

/** How often the fetcher writes down that a host still does not answer. */
const NOTE_UNREACHABLE_EVERY_MS = 1000;

// The fetcher's view of the SSH hosts: one run log follower per host that has jobs (which also
// renews the host's lease: follower.ts, lease.ts), the batched polls (one command per host per
// round, however many jobs), and each host's reachability. A host that cannot be reached for
// HostDownAfter is reported down, once. It keeps, per host, when it last sent a renewal (the
// fence bound counts from it), and which hosts are due a reconcile (reconcile.ts): after a
// session's first renewal, and after the host says its watchdog stopped runs.

export class RemoteFleet {
  readonly hosts: HostRegistry;
  readonly pool: SshPool;
  private readonly followers = new Map<string, RemoteLogFollower>();
  private buffered: { source: string; events: RunLogEvent[]; host: string; offset: number }[] = [];
  private readonly unreachableSince = new Map<string, { since: number; reason: string }>();
  private readonly savedOffsets = new Map<string, number>();
  readonly lease: LeaseTimes;
  /**
   * When a renewal was last sent to each host. A fetcher just started cannot know when the one
   * before it last renewed (it may have, a moment before it died), so it counts from its own start.
   */
  private readonly renewals = new Map<string, number>();
  private readonly createdAt = Date.now();
  /** Hosts due a reconcile, and since when (it waits for a renewal sent after that). */
  private readonly reconcileDue = new Map<string, number>();

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly onActivity: () => void,
    private readonly scope: RemoteScope,
  ) {
    this.hosts = new HostRegistry(config, store);
    this.pool = new SshPool(this.hosts, config, log);
    this.lease = leaseTimes(config.hostDownAfterMs);
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
    if (!this.sweptForGone) {
      this.earlier = await this.store.unreachableHosts();
      await this.markGoneHostsDown();
    }
    const hosts = this.hosts.all();
    if (hosts.length === 0) return;
    const [taken, offsets] = await Promise.all([this.store.slotsUsed(hosts.map((h) => `host:${h.name}`)), this.store.remoteLogOffsets()]);
    hosts.forEach((host, i) => {
      const busy = taken[i] > 0;
      if ((busy || this.hosts.isDown(host.name)) && !this.followers.has(host.name)) this.follow(host.name, offsets.get(host.name) ?? 0);
    });
    // A host marked down that is not known any more (an EC2 instance that ended while a job was
    // granted to it; a host taken out of the config) has no follower to fail: it is unreachable
    // since it was marked down, so that its runs are given up on like any lost host's.
    for (const [name, state] of this.hosts.down()) {
      if (!this.hosts.get(name) && !this.unreachableSince.has(name)) this.reachable(name, false, state.reason ?? 'no longer known');
    }
  }

  private sweptForGone = false;
  /** What the fetchers before this one found unreachable (see UnreachableRecord). */
  private earlier = new Map<string, UnreachableRecord>();
  /** When each unreachable host's record was last written. */
  private readonly noted = new Map<string, number>();

  /**
   * Once, as the fetcher starts: a host that still holds jobs but is known no more (an EC2
   * instance that ended, a host taken out of the config while the supervisor was down) is
   * marked down, so that its jobs are given up on (and any run there stops itself by its
   * lease) rather than stay granted for ever. While running, the starter does the same for a
   * host it is asked to launch on and cannot find (dispatch.ts).
   */
  private async markGoneHostsDown(): Promise<void> {
    for (const name of await this.store.hostsHoldingSlots()) {
      if (this.hosts.get(name) || this.hosts.isDown(name)) continue;
      await this.hosts.setState(name, 'down', `host ${name} is no longer known (an EC2 instance that ended, or a host taken out of the config)`);
      this.log.warn(`ResultFetcher: host ${name} holds jobs but is no longer known: marked down`);
    }
    this.sweptForGone = true;
  }

  /** Whether this host's run log is followed. */
  follows(host: string): boolean {
    return this.followers.has(host);
  }

  private follow(name: string, offset: number): void {
    this.savedOffsets.set(name, offset);
    const followed = { base: remoteBase(this.scope, name), runLog: remoteRunLog(this.scope, name), lease: this.lease };
    const follower = new RemoteLogFollower(name, this.pool.connection(name), followed, offset, {
      events: (events, at) => {
        this.buffered.push({ source: `host:${name}`, events, host: name, offset: at });
        if (events.some((e) => e.kind === 'stopped')) this.reconcileDue.set(name, Date.now());
        this.onActivity();
      },
      reachable: (ok, reason) => this.reachable(name, ok, reason),
      renewed: (first) => {
        const now = Date.now();
        this.renewals.set(name, now);
        if (first && !this.reconcileDue.has(name)) this.reconcileDue.set(name, now - 1);
        if (first) this.onActivity();
      },
    }, this.log);
    this.followers.set(name, follower);
  }

  /** When a renewal (or a launch) last renewed this host's lease, as far as this fetcher can tell. */
  lastRenewal(host: string, launchLease = 0): number {
    return Math.max(this.renewals.get(host) ?? this.createdAt, this.createdAt, launchLease);
  }

  /** Hosts due a reconcile: asked for, and renewed since (so a run let go on is not stopped again at once). */
  reconcilesDue(): string[] {
    return [...this.reconcileDue].filter(([host, since]) => (this.renewals.get(host) ?? 0) > since).map(([host]) => host);
  }

  reconciled(host: string, asked: number): void {
    if ((this.reconcileDue.get(host) ?? Infinity) <= asked) this.reconcileDue.delete(host);
  }

  /** When this host's reconcile was asked for (for reconciled()). */
  reconcileAskedAt(host: string): number | undefined {
    return this.reconcileDue.get(host);
  }

  /** Hosts that do not answer, since when and why. */
  unreachable(): { host: string; since: number; reason: string }[] {
    return [...this.unreachableSince].map(([host, { since, reason }]) => ({ host, since, reason }));
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
      const was = this.unreachableSince.delete(host);
      if (was || this.earlier.delete(host)) void this.store.clearUnreachable(host).catch(() => {});
      this.noted.delete(host);
      if (was || this.hosts.isDown(host)) {
        this.log.info(`ResultFetcher: host ${host} is reachable again`);
        // The manager grants to it again at once (its jobs may be waiting in its queue).
        void this.hosts.setState(host, 'up').then(() => this.store.signal('manager'));
      }
      return;
    }
    if (!this.unreachableSince.has(host)) {
      const now = Date.now();
      // A host already marked down (by a fetcher before this one) has not answered since then;
      // one that a fetcher before this one was still trying a moment ago has not either (or a
      // supervisor restarted every few seconds would never give up on a host that is gone).
      const state = this.hosts.state(host);
      const earlier = this.earlier.get(host);
      let since = now;
      if (state?.state === 'down') since = Math.min(now, state.since - this.config.hostDownAfterMs);
      else if (earlier && now - earlier.checkedAt < this.config.hostDownAfterMs) since = Math.min(now, earlier.since);
      this.unreachableSince.set(host, { since, reason: reason ?? earlier?.reason ?? 'unreachable' });
      this.log.warn(`ResultFetcher: host ${host} is unreachable (${reason})${since < now ? `, since ${formatDuration(now - since)} ago` : ''}; its jobs' state is unknown until it answers`);
    }
  }

  /** Writes down, every few seconds, that the unreachable hosts still do not answer (see UnreachableRecord). */
  private async noteUnreachable(now: number): Promise<void> {
    for (const [host, { since, reason }] of this.unreachableSince) {
      if (now - (this.noted.get(host) ?? 0) < NOTE_UNREACHABLE_EVERY_MS) continue;
      this.noted.set(host, now);
      await this.store.noteUnreachable(host, { since, checkedAt: now, reason });
    }
  }

  /** Hosts unreachable for longer than HostDownAfter and not yet marked down: marks them down. */
  async newlyDown(now = Date.now()): Promise<{ host: string; reason: string }[]> {
    await this.noteUnreachable(now);
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

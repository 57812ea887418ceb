import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import type { Store } from '../../store/store.js';
import { parseJson } from '../../store/job-record.js';
import { HostKeyError, SshConfigError } from '../../ssh/connection.js';
import type { HostRegistry } from '../../ssh/hosts.js';
import { HostDownError, LaunchError, type HostLauncher, type RemoteLaunch } from './host-launcher.js';
import { runId as makeRunId } from '../../runs/run-log.js';

// The starter's queue of Remote launches, per host. Launches go out in batches, concurrently with
// the starter's local work. A host that cannot be reached, or is marked down, is tried again
// with a growing delay (its jobs keep their slots: a short outage costs nothing). What becomes of
// the runs of a host that stays down is the fetcher's to decide (remote/watch.ts): it gives them
// up, and a launch of a run given up on is dropped here (leaseLaunch-N.lua says it is not
// current), never sent. When trying again cannot help (a refused host key), the jobs are
// recorded as not started and the fetcher turns that into a retry or a failure.

/** Launch batches in flight per host (each an SSH channel; well below MaxSessions). */
const BATCHES_IN_FLIGHT = 3;

export class RemoteDispatch {
  private readonly pending = new Map<string, RemoteLaunch[]>();
  private readonly retry = new Map<string, { at: number; delay: number }>();
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly starter: HostLauncher,
    private readonly hosts: HostRegistry,
    private readonly store: Store,
    private readonly notStarted: (runId: string, reason: string) => void,
    private readonly launched: (host: string) => void,
    private readonly log: Logger,
  ) {}

  get waiting(): boolean {
    return this.pending.size > 0;
  }

  add(host: string, job: RemoteLaunch): void {
    this.pending.set(host, [...(this.pending.get(host) ?? []), job]);
  }

  /**
   * Launches what is due, in batches per host, several batches in flight per host at once (a
   * batch that waits for the one before would wait for an SSH round trip).
   */
  async flush(): Promise<void> {
    await this.hosts.refresh();
    const now = Date.now();
    const due = [...this.pending.keys()].filter((host) => (this.retry.get(host)?.at ?? 0) <= now && (this.inFlight.get(host) ?? 0) < BATCHES_IN_FLIGHT);
    await Promise.all(due.map(async (host) => {
      this.inFlight.set(host, (this.inFlight.get(host) ?? 0) + 1);
      try {
        await this.launchOn(host);
      } finally {
        this.inFlight.set(host, (this.inFlight.get(host) ?? 1) - 1);
      }
      // What came while this batch was out goes now.
      if (this.pending.has(host)) void this.flush();
    }));
  }

  private async launchOn(host: string): Promise<void> {
    let jobs = this.pending.get(host) ?? [];
    this.pending.delete(host);
    // Tried before and failed: the fetcher may have given some up since (the host down too long).
    if (this.retry.has(host)) jobs = await this.stillCurrent(host, jobs).catch(() => jobs);
    if (jobs.length === 0) return;
    // The registry may be older than the grant: a host just made known (an EC2 instance that
    // became ready), or one that answers again (grantFrom.lua reads HostState at once, this
    // registry may say "down" for up to 2 s more). Look again before refusing the jobs, or they
    // fail for a host that is up.
    if (!this.hosts.get(host) || this.hosts.isDown(host)) await this.hosts.refresh(true);
    try {
      await this.markDownIfGone(host);
      if (this.hosts.isDown(host)) throw new HostDownError(`host ${host} is down: ${this.hosts.state(host)?.reason ?? 'unreachable'}`);
      await this.withDefinitions(jobs);
      const { failed, stale } = await this.starter.launch(host, jobs);
      for (const f of failed) this.notStarted(f.runId, f.reason);
      if (stale.length) this.log.info(`JobStarter: not launching ${stale.join(' ')} on ${host}: given up on (or cancelled) meanwhile`);
      this.retry.delete(host);
      this.log.debug(`JobStarter: started ${jobs.length - failed.length - stale.length} jobs on ${host}`);
      this.launched(host);
    } catch (err) {
      if (err instanceof HostKeyError || err instanceof SshConfigError || err instanceof LaunchError) {
        this.log.error(`JobStarter: ${err.message}`);
        for (const job of jobs) this.notStarted(makeRunId(job.id, job.run), err.message);
        return;
      }
      const delay = Math.min((this.retry.get(host)?.delay ?? 500) * 2, 10_000);
      this.retry.set(host, { at: Date.now() + delay, delay });
      this.pending.set(host, [...jobs, ...(this.pending.get(host) ?? [])]);
      const level = err instanceof HostDownError && delay >= 10_000 ? 'debug' : 'warn';
      this.log[level](`JobStarter: cannot start ${jobs.length} job(s) on ${host} yet (${errorMessage(err)}); trying again in ${delay}ms`);
    }
  }

  /**
   * A host granted to but gone (an EC2 instance that ended as the grant was made, from a view of
   * it a moment old; a host taken out of the config) is marked down, so that the fetcher gives
   * its runs up (remote/watch.ts): no follower of it will ever fail for it to notice.
   */
  async markDownIfGone(host: string): Promise<void> {
    if (this.hosts.get(host)) return;
    await this.hosts.refresh(true);
    if (!this.hosts.get(host) && !this.hosts.isDown(host)) {
      await this.hosts.setState(host, 'down', `host ${host} is no longer known (an EC2 instance that ended, or a host taken out of the config)`);
      this.log.warn(`JobStarter: host ${host} has runs granted to it but is no longer known: marked down`);
    }
  }

  /** The launches whose run is still its job's current one (leaseLaunch-N.lua decides again at the launch). */
  private async stillCurrent(host: string, jobs: RemoteLaunch[]): Promise<RemoteLaunch[]> {
    const rows = await this.store.getFields(jobs.map((job) => job.id), ['state', 'run']);
    const current = jobs.filter((job, i) => ['granted', 'running'].includes(rows[i][0] ?? '') && Number(rows[i][1]) === job.run);
    if (current.length < jobs.length) this.log.info(`JobStarter: not launching ${jobs.length - current.length} job(s) on ${host}: given up on (or cancelled) meanwhile`);
    return current;
  }

  /** The job file written on the host is the definition as queued (payloads carry it only sometimes). */
  private async withDefinitions(jobs: RemoteLaunch[]): Promise<void> {
    const missing = jobs.filter((job) => job.raw === null || job.raw === undefined);
    if (missing.length === 0) return;
    const rows = await this.store.getFields(missing.map((job) => job.id), ['raw']);
    missing.forEach((job, i) => (job.raw = parseJson(rows[i][0])));
  }
}

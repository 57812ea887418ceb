import type { HostRegistry } from '../../ssh/hosts.js';
import type { SshPool } from '../../ssh/pool.js';
import { runId as makeRunId, splitRunId } from '../../runs/run-log.js';
import { errorMessage } from '../../util/errors.js';
import type { GrantedRun, LaunchContext, LaunchSide, Orphan } from '../backend.js';
import { notStarted, relaunch } from '../granted.js';
import { RemoteDispatch } from './dispatch.js';
import { HostLauncher } from './host-launcher.js';
import type { RemoteScope } from './paths.js';
import { leaseTimes } from './lease.js';

// Remote jobs (and EC2 jobs, on their instance), the starter's half: granted runs are gathered
// per host and launched in batches (dispatch.ts) through each host's launch shell
// (host-launcher.ts, launch-shell.ts). Each run claims itself on the host as it starts, so a
// launch sent twice starts it once; a run that cannot start is recorded as such at once.
//
// Recovery: for runs a dead starter took, the claim files on the host decide. Recovery makes each
// run's claim itself: made now, the run never started (and now never will) and is launched again
// under a new run number; already made, the run started (the claim holds its pid) and is marked
// running, so the fetcher polls it even if its start line was never read.

export class RemoteLaunch implements LaunchSide {
  private readonly launcher: HostLauncher;
  private readonly dispatch: RemoteDispatch;

  constructor(
    private readonly ctx: LaunchContext,
    hosts: HostRegistry,
    ssh: SshPool,
    scope: RemoteScope,
  ) {
    this.launcher = new HostLauncher(ssh, scope, ctx.store, leaseTimes(ctx.config.hostDownAfterMs), ctx.log);
    this.dispatch = new RemoteDispatch(this.launcher, hosts, ctx.store, (rid, reason) => {
      const { jobId, run } = splitRunId(rid);
      notStarted(ctx, jobId, run, reason);
    }, (host) => ctx.launchedOn(host), ctx.log);
  }

  get busy(): boolean {
    return this.dispatch.waiting;
  }

  start(run: GrantedRun): void {
    this.dispatch.add(run.where.slice('host:'.length), { id: run.id, run: run.run, attempt: run.attempt, spec: run.spec, raw: run.raw });
  }

  flush(): void {
    if (this.dispatch.waiting) void this.dispatch.flush();
  }

  async settle(orphans: Orphan[]): Promise<Orphan[]> {
    const pending: Orphan[] = [];
    const byHost = new Map<string, Orphan[]>();
    for (const orphan of orphans) {
      if (orphan.state !== 'granted') continue; // running: the fetcher polls it
      const host = orphan.where.slice('host:'.length);
      byHost.set(host, [...(byHost.get(host) ?? []), orphan]);
    }
    for (const [host, list] of byHost) {
      try {
        const { neverStarted, started } = await this.launcher.settleOrphans(host, list);
        for (const orphan of list) {
          if (!neverStarted.has(makeRunId(orphan.id, orphan.run))) continue;
          const run = await relaunch(this.ctx, orphan);
          if (run) this.start(run);
        }
        for (const orphan of list) {
          const pid = started.get(makeRunId(orphan.id, orphan.run));
          if (pid !== undefined) this.ctx.recorder.start({ id: orphan.id, run: orphan.run, pid, startedAt: Date.now(), epoch: orphan.where });
        }
      } catch (err) {
        this.ctx.log.warn(`JobStarter: cannot settle ${list.length} job(s) on ${host} yet: ${errorMessage(err)}`);
        await this.dispatch.markDownIfGone(host).catch(() => {});
        pending.push(...list);
      }
    }
    this.flush();
    return pending;
  }

  async close(): Promise<void> {}
}

import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './protocol.js';
import { parseGrantedPayload, Store } from '../lib/store/store.js';
import type { BlockingConnection } from '../lib/store/blocking.js';
import { parseJson } from '../lib/store/job-record.js';
import type { JobSpec } from '../lib/jobfile/job-spec.js';
import { backendOf, type BackendKind, type LaunchContext, type LaunchSide, type Orphan } from '../lib/backends/backend.js';
import { grantedRun, notStarted } from '../lib/backends/granted.js';
import { poolsFor } from '../lib/backends/placement.js';
import { LocalLaunch } from '../lib/backends/local/launch.js';
import { ThreadLaunch } from '../lib/backends/thread/launch.js';
import { RemoteLaunch } from '../lib/backends/remote/launch.js';
import { RunRecorder } from '../lib/runs/recorder.js';
import { HostRegistry } from '../lib/ssh/hosts.js';
import { errorMessage } from '../lib/util/errors.js';
import { SshPool } from '../lib/ssh/pool.js';

// The JobStarter actor: it takes granted runs from Granted_Queue (each entry carries all it needs
// to start: id, run number, spec) and hands each to the backend of its kind (lib/backends):
//   Local  -> a launch request to this starter's launcher, which starts the job's sh script;
//   Thread -> its Function steps, one after another, in the thread pool;
//   Remote, EC2 -> a launch batch for the job's host, over SSH.
// It does not wait for them to end: the fetcher learns of local and remote runs from their run
// logs; Thread runs, and runs that could not start, the starter records itself.
//
// Taking is a pop (BLMPOP, many at once), so a starter that dies right after it leaves granted
// runs that no queue holds. They are not lost: they still hold their slot, in state granted, with
// their run number. At start, recovery finds them and each backend settles its own (see
// settle() in each): a run that provably never started is started again under a new run number;
// one that started is left to the fetcher. A run is never started twice.
//
// The same can happen without a death: when the blocking connection drops (Redis restarting, a
// Sentinel failover), a pop whose reply was lost was done all the same, and a take that no
// replica confirmed may or may not have survived. After each drop the starter looks again for
// such runs, leaving out every run it took itself (`ours`): those it has launched or is launching.

const TAKE_BATCH = 64;
const IDLE_WAIT_MS = 5000;
const BUSY_WAIT_MS = 200;

class Starter implements Actor {
  private readonly blocking: BlockingConnection;
  private readonly recorder: RunRecorder;
  private readonly hosts: HostRegistry;
  private readonly ssh: SshPool;
  private readonly thread: ThreadLaunch;
  private readonly remote: RemoteLaunch;
  /** Job id -> the latest run this starter took or relaunched: never an orphan while it lives. */
  private readonly ours = new Map<string, number>();

  private constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
    private readonly launch: LaunchContext,
    private readonly local: LocalLaunch,
    hosts: HostRegistry,
    storeId: string,
  ) {
    this.blocking = store.blocking(ctx.log);
    this.recorder = launch.recorder;
    this.hosts = hosts;
    this.ssh = new SshPool(hosts, ctx.config, ctx.log);
    this.thread = new ThreadLaunch(launch);
    this.remote = new RemoteLaunch(launch, hosts, this.ssh, { deployment: ctx.config.deployment, storeId });
  }

  static async create(ctx: ActorContext): Promise<Starter> {
    const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor', { node: ctx.config.nodeName });
    const hosts = new HostRegistry(ctx.config, store);
    const recorder = new RunRecorder(store, () => poolsFor(ctx.config, hosts), ctx.log, 'JobStarter', ctx.config.retryBackoffMs);
    const launch: LaunchContext = {
      config: ctx.config,
      store,
      log: ctx.log,
      recorder,
      runLogOpened: (epoch, path) => ctx.send('fetcher', { type: 'runLog', epoch, path }),
      launchedOn: (host) => ctx.send('fetcher', { type: 'launched', host }),
    };
    return new Starter(ctx, store, launch, await LocalLaunch.open(launch), hosts, await store.storeId());
  }

  private side(kind: BackendKind): LaunchSide {
    return kind === 'local' ? this.local : kind === 'thread' ? this.thread : this.remote;
  }

  async run(): Promise<void> {
    const { stop } = this.ctx;
    await this.hosts.refresh(true);
    let orphans = await this.findOrphans();
    let drops = this.blocking.drops;
    while (!stop.stopped) {
      if (this.blocking.drops !== drops) {
        drops = this.blocking.drops;
        orphans = await this.findOrphansAgain(orphans).catch((err: unknown) => {
          drops = -1; // look again on the next turn
          this.ctx.log.warn(`JobStarter: cannot look for runs a lost connection left yet: ${errorMessage(err)}`);
          return orphans;
        });
      }
      if (orphans.length) orphans = await this.settle(orphans);
      const busy = orphans.length > 0 || this.remote.busy;
      const payloads = await this.blocking.takeGranted(TAKE_BATCH, busy ? BUSY_WAIT_MS : IDLE_WAIT_MS, stop);
      for (const payload of payloads) this.take(payload);
      for (const side of [this.local, this.thread, this.remote]) side.flush();
    }
  }

  private take(payload: string): void {
    const job = parseGrantedPayload(payload);
    if (!job) {
      this.ctx.log.warn(`JobStarter: dropped a Granted_Queue entry that is not a launch payload: ${JSON.stringify(payload.slice(0, 80))}`);
      return;
    }
    this.ours.set(job.id, job.run);
    const run = grantedRun(job);
    if ('problem' in run) notStarted(this.launch, run.id, run.run, run.problem);
    else this.side(backendOf(run.spec.classType, run.where)).start(run);
  }

  handle(message: ToActor): void {
    if (message.type === 'abort') this.thread.abort(message.id, message.run, message.reason);
  }

  /**
   * Runs that no queue holds and no starter runs, read before taking any: granted ones (taken by
   * a starter that may have died before launching them), and Thread runs marked running (their
   * starter is gone: a Thread run lives in its starter's threads).
   */
  private async findOrphans(): Promise<Orphan[]> {
    const holders = await Promise.all(poolsFor(this.ctx.config, this.hosts).map((pool) => this.store.slotHolders(pool.location)));
    const ids = [...new Set(holders.flat())];
    if (ids.length === 0) return [];
    const rows = await this.store.getFields(ids, ['state', 'run', 'host', 'spec', 'classType', 'runlog', 'node']);
    const queued = await this.store.grantedQueueJobIds();
    const holding = new Set(ids);
    for (const id of this.ours.keys()) if (!holding.has(id)) this.ours.delete(id);
    return ids.flatMap((id, i): Orphan[] => {
      const [state, run, host, spec, classType, runlog, node] = rows[i];
      // Only this node's: another node's starter may be launching a remote run it granted right
      // now (a record without a node is from before nodes, adopted by whoever starts first).
      if (node !== null && node !== this.ctx.config.nodeName) return [];
      const orphan = (state === 'granted' && !queued.has(id)) || (state === 'running' && classType === 'Thread');
      if (!orphan || (this.ours.get(id) ?? -1) >= Number(run)) return [];
      return [{ id, run: Number(run), state: state as Orphan['state'], where: host ?? 'local', classType: classType ?? '?', spec: parseJson(spec) as JobSpec | null, startedBy: runlog }];
    });
  }

  /** After a connection drop: the orphans known, and any the drop left (findOrphans). */
  private async findOrphansAgain(known: Orphan[]): Promise<Orphan[]> {
    const found = await this.findOrphans();
    const knownIds = new Set(known.map((o) => o.id));
    const fresh = found.filter((o) => !knownIds.has(o.id));
    if (fresh.length) this.ctx.log.info(`JobStarter: after a lost connection to Redis, ${fresh.length} granted run(s) no queue holds: settling them (${fresh.map((o) => `${o.id}/${o.run}`).join(' ')})`);
    return [...known, ...fresh];
  }

  /** Each backend settles its own orphans; returns those to look at again. */
  private async settle(orphans: Orphan[]): Promise<Orphan[]> {
    const byKind = new Map<BackendKind, Orphan[]>();
    for (const orphan of orphans) {
      // A relaunch gives it the next run number (relaunch-2.lua), which is then this starter's.
      this.ours.set(orphan.id, orphan.run + 1);
      const kind = backendOf(orphan.classType, orphan.where);
      byKind.set(kind, [...(byKind.get(kind) ?? []), orphan]);
    }
    const pending: Orphan[] = [];
    for (const [kind, list] of byKind) pending.push(...(await this.side(kind).settle(list)));
    await this.recorder.flush();
    return pending;
  }

  async close(): Promise<void> {
    await this.thread.close();
    await this.local.close();
    await this.remote.close();
    this.ssh.closeAll();
    this.blocking.close();
    await this.recorder.flush();
    await this.store.close();
  }
}

runActor('starter', (ctx) => Starter.create(ctx));

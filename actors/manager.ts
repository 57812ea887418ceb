import { runActor, type Actor, type ActorContext } from './actor.js';
import type { ToActor } from './protocol.js';
import { Store, type GrantPool, type IntakeEntry, type RouteDecision } from '../lib/store/store.js';
import type { BlockingConnection } from '../lib/store/blocking.js';
import { validateJobSpec, type JobSpec } from '../lib/jobfile/job-spec.js';
import { parseJson } from '../lib/store/job-record.js';
import { errorMessage, JobSpecError } from '../lib/util/errors.js';
import { locationOf, poolsFor } from '../lib/backends/placement.js';
import { prepareJobDir } from '../lib/runs/paths.js';
import { HostRegistry } from '../lib/ssh/hosts.js';
import { Provisioner } from '../lib/backends/ec2/provisioner.js';
import { Retention } from '../lib/retention/retention.js';
import { livenessOf, type NodeLease } from '../lib/nodes/lease.js';
import { nodeLocation } from '../lib/store/keys.js';
import { formatDuration } from '../lib/util/duration.js';

// The JobManager actor. It watches Job_Queue: every entry is checked (a job file that is not
// valid becomes `rejected`, with the reason, and everything else goes on) and routed to the queue
// of the location it needs. Then it grants: for each location with room, jobs move to
// Granted_Queue while slots remain (grant-N.lua). Full locations are not watched: their queues
// stay untouched until a finishing job frees a slot, which signals the manager.
//
// It blocks on Signal:manager (new jobs, freed slots, an instance ready) between rounds, or until
// the next delayed retry is due; the next read of Job_Queue rides behind that wait (one round
// trip for both: BlockingConnection.waitForIntake). Beside that loop runs the EC2 provisioner
// (lib/backends/ec2/provisioner.ts), which launches, readies and terminates instances; EC2's
// slowness never holds up a grant; and retention (lib/retention/retention.ts), which compacts
// finished jobs and removes old ones.

const INTAKE_BATCH = 500;
const GRANT_BATCH = 500;
/** What the manager reads of each intake entry's record: decide() takes the first three, the fourth names its sweep. */
const INTAKE_FIELDS = ['raw', 'file', 'baseDir', 'sweep'];
/** Local jobs get their directory made at routing while fewer than this many wait ahead of them. */
const PREPARE_AHEAD = 2000;
const IDLE_WAIT_MS = 5000;
const RECLAIM_EVERY_MS = 2000;

class Manager implements Actor {
  private readonly waiter: BlockingConnection;
  private readonly hosts: HostRegistry;
  private readonly provisioner: Provisioner;
  private readonly retention: Retention;
  private granted = 0;
  private reclaimedAt = 0;

  constructor(
    private readonly ctx: ActorContext,
    private readonly store: Store,
  ) {
    this.waiter = store.blocking(ctx.log);
    this.hosts = new HostRegistry(ctx.config, store);
    this.provisioner = new Provisioner(ctx.config, store, ctx.log, () => void store.signal('manager'));
    this.retention = new Retention(ctx.config, store, ctx.log, this.hosts);
  }

  async run(): Promise<void> {
    const { stop, log } = this.ctx;
    log.info(`JobManager: watching Job_Queue (node ${this.ctx.config.nodeName}, LocalMaxJobs ${this.ctx.config.localMaxJobs})`);
    const provisioning = this.provisioner.run(stop);
    const retaining = this.retention.run(stop);
    await this.hosts.refresh(true);
    // Null: read Job_Queue now (at the start, and after a full batch); else what the wait brought.
    let entries: IntakeEntry[] | null = null;
    while (!stop.stopped) {
      entries ??= await this.store.readIntakeFields(INTAKE_BATCH, INTAKE_FIELDS);
      const decisions = await this.decideIntake(entries);
      // Sent together, in this order, on one connection: one round trip, and Redis runs the
      // route before the grant, so a job routed now can be granted now.
      const [, { granted, nextDueMs }] = await Promise.all([this.route(decisions), this.store.grant(this.pools(), GRANT_BATCH)]);
      this.granted += granted;
      // Upkeep after the grant, not before: the job that woke the manager is not held up by it
      // (it is due after an idle wait, i.e. on most wake-ups; hosts' states a turn old are fine).
      await this.hosts.refresh();
      await this.reclaimDownNodes();
      if (decisions.length === INTAKE_BATCH || granted === GRANT_BATCH) {
        entries = null;
        continue;
      }
      // A host that comes back up (HostState) is noticed within the idle wait. What the wait
      // ends on (new jobs, mostly) comes back read with it.
      entries = await this.waiter.waitForIntake(nextDueMs ?? IDLE_WAIT_MS, stop, INTAKE_BATCH, INTAKE_FIELDS);
    }
    await Promise.all([provisioning, retaining]);
  }

  handle(_message: ToActor): void {
    // Everything the manager needs to know arrives through Redis.
  }

  /**
   * The old QueueTracker: the locations this manager grants for, with their slot limits. A host
   * that is down is left out; a location whose slots are all taken is skipped by grant-N.lua
   * without touching its queue, and gets its freed slots handed on by finishRun-N.lua.
   */
  private pools(): GrantPool[] {
    return poolsFor(this.ctx.config, this.hosts);
  }

  /** The oldest entries of Job_Queue (as read with INTAKE_FIELDS), each checked and placed (or found wanting). */
  private async decideIntake(entries: IntakeEntry[]): Promise<RouteDecision[]> {
    if (entries.length === 0) return [];
    const decisions: RouteDecision[] = [];
    const processes = new Set<string>();
    // The jobs of a sweep share their definition (stored once, on the sweep): it is read and
    // checked once per batch, and its spec goes back to Redis once, with the batch's first job
    // of that sweep (route-N.lua stores it on the sweep), however many of its jobs the batch holds.
    const sweeps = new Map<string, RouteDecision>();
    for (const { entry, fields } of entries) {
      const sweep = fields[3];
      if (!sweep) {
        decisions.push(await this.decide(entry, fields, processes));
        continue;
      }
      let decided = sweeps.get(sweep);
      if (!decided) {
        decided = { ...(await this.decide(entry, await this.store.sweepDefinition(sweep), processes)), sweep };
        sweeps.set(sweep, decided);
        decisions.push(decided);
        continue;
      }
      if (processes.has(decided.entry)) processes.add(entry);
      decisions.push({ ...decided, entry, detail: decided.location === null ? decided.detail : '' });
    }
    // A local job's directory and log are made now, one after another, long before the job
    // runs: made by the job's own process as it starts, eight at a time, they cost each start
    // more than the fork does (ext4 measured here). The launcher makes them again if missing.
    // A Thread job's are made only if a step needs them (lib/backends/thread/thread-task.ts).
    // Only for jobs near the front of the queue: a sweep of 100,000 jobs would otherwise have
    // 100,000 directories made at once, competing with its own queueing, for jobs that start
    // minutes later.
    const local = decisions.filter((d) => (d.location === 'local' || d.location === nodeLocation(this.ctx.config.nodeName)) && processes.has(d.entry));
    if (local.length === 0) return decisions;
    const ahead = await this.store.waitingCount('local');
    for (const d of local.slice(0, Math.max(0, PREPARE_AHEAD - ahead))) this.prepareDir(d.entry);
    return decisions;
  }

  /** The decisions to Redis (route-N.lua): each job to its location's queue, or rejected. */
  private async route(decisions: RouteDecision[]): Promise<void> {
    if (decisions.length === 0) return;
    const { rejected } = await this.store.route(decisions);
    for (const d of decisions) {
      if (d.location === null) this.ctx.log.warn(`JobManager: rejected job ${d.entry}: ${d.detail}`, { job: d.entry });
    }
    if (rejected) this.ctx.log.debug(`JobManager: routed ${decisions.length - rejected}, rejected ${rejected}`);
    // The first manager to wake takes the intake; the jobs it routed to queues that every node
    // draws from (local, any, ec2:…) are for the other nodes too: they are woken now, not at
    // their next idle look.
    if (decisions.some((d) => d.location !== null && d.location !== nodeLocation(this.ctx.config.nodeName))) {
      await this.store.signalNodes('manager', this.upNodes(await this.store.nodes(), Date.now()));
    }
  }

  /**
   * Other nodes down longer than NodeDownAfter: what was granted to them and not started goes
   * back to its queue, for the nodes that are up (reclaimNode-5.lua checks the lease again).
   */
  private async reclaimDownNodes(): Promise<void> {
    const now = Date.now();
    if (now - this.reclaimedAt < RECLAIM_EVERY_MS) return;
    this.reclaimedAt = now;
    const { nodeName, nodeDownAfterMs } = this.ctx.config;
    for (const [node, lease] of await this.store.nodes()) {
      if (node === nodeName || livenessOf(lease, now, nodeDownAfterMs) !== 'down') continue;
      const given = await this.store.reclaimNode(node, nodeDownAfterMs, now);
      if (given > 0) this.ctx.log.warn(`JobManager: node ${node} is down (its lease was last renewed ${formatDuration(now - lease.renewedAt)} ago): ${given} job(s) granted to it and not started go to other nodes`);
    }
  }

  /** The other nodes whose lease is fresh. */
  private upNodes(nodes: Map<string, NodeLease>, now: number): string[] {
    return [...nodes].filter(([node, lease]) => node !== this.ctx.config.nodeName && livenessOf(lease, now, this.ctx.config.nodeDownAfterMs) === 'up').map(([node]) => node);
  }

  /** A failure here is left to the starter, which makes the directory again and records why it could not. */
  private prepareDir(id: string): void {
    try {
      prepareJobDir(this.ctx.config.stateDir, id);
    } catch (err) {
      this.ctx.log.debug(`JobManager: job ${id}: its directory is not made yet (${errorMessage(err)})`, { job: id });
    }
  }

  /** `processes` gets the entry if its job runs as a process of its own (not Thread). */
  private async decide(entry: string, [raw, file, baseDir]: (string | null)[], processes: Set<string>): Promise<RouteDecision> {
    const reject = (reason: string): RouteDecision => ({ entry, location: null, detail: reason, pollMs: 0, timeoutMs: null, retries: 0 });
    if (raw === null) return reject('the job record has no job definition; queue job files with `jobmanager queue FILE`');
    let spec: JobSpec;
    try {
      spec = validateJobSpec(parseJson(raw), { file: file ?? '', baseDir: baseDir ?? undefined });
    } catch (err) {
      return reject(err instanceof JobSpecError ? err.message : `invalid job: ${errorMessage(err)}`);
    }
    const placement = locationOf(spec, this.ctx.config);
    if ('reason' in placement) return reject(placement.reason);
    if (placement.adhoc) await this.hosts.register(placement.adhoc);
    if (placement.location.startsWith('ec2:')) await this.store.addEc2Location(placement.location);
    if (spec.classType !== 'Thread') processes.add(entry);
    return {
      entry,
      location: placement.location,
      detail: JSON.stringify(spec),
      pollMs: spec.pollPeriodMs ?? this.ctx.config.pollPeriodMs,
      timeoutMs: spec.timeoutMs,
      retries: spec.retries,
    };
  }

  async close(): Promise<void> {
    this.waiter.close();
    this.retention.close();
    await this.store.close();
    this.ctx.log.info(`JobManager: stopped after granting ${this.granted} jobs`);
  }
}

runActor('manager', async (ctx) => {
  const store = await Store.open(ctx.redisUrl, ctx.config.deployment, 'actor', { node: ctx.config.nodeName });
  return new Manager(ctx, store);
});

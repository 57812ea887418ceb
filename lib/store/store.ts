import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { RedisUnavailableError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { createRedis, describeRedis, isClusterAddress, isConnectionLoss, isSentinelAddress, type ConnectionRole } from './connect.js';
import { ReplicaWait } from './replica-wait.js';
import { sleep } from '../util/stop-signal.js';
import { Keys, type ActorName, type Location } from './keys.js';
import { defaultNodeName } from '../nodes/node-name.js';
import type { NodeLease } from '../nodes/lease.js';
import { parseJobRecord, parseJson, type DownloadFailure, type JobRecord, type RunEntry } from './job-record.js';
export type { DownloadFailure } from './job-record.js';
import type { ActorStatus, AdhocHostRecord, HostState, InstanceRecord, SupervisorRecord, UnreachableRecord } from './registry-records.js';
import { BlockingConnection } from './blocking.js';
import { Scripts } from './scripts.js';
import { readFields, readRecords } from './sweep-rows.js';
import type { GrantPool, IntakeEntry, LimitVerdict, NewJob, NewSweep, PolledRun, QueueDepths, RouteDecision, RunFinished, RunStarted, TakenJob } from './types.js';

export type { EventBatch, JobEvent } from './events.js';
export type * from './types.js';
export { parseGrantedPayload } from './scripts.js';

// The durable store, and the one way to Redis for the product (lib/, actors/): every state
// change is one Lua script (scripts.ts lays out their keys and arguments; lua/ holds them, one
// file each with a header saying what it takes and returns), or, for the small records beside
// the jobs (hosts, instances, run logs, the supervisor's heartbeat), one command. Reads are plain
// commands. Methods take and return typed values, never raw replies; keys are made in keys.ts.
//
// Longer than most files here, for one reason: it is the single door, so every read and write
// the actors, the CLI and the web page need has its few lines here (sections below).

/**
 * Jobs of a sweep written per addSweepJobs script: one round trip carries a few of these, and
 * one script holds Redis for a few milliseconds at most (other clients wait meanwhile).
 */
const SWEEP_BATCH = 2000;

/** How long an actor's Store.open waits for a Redis that refuses connections (restarting). */
const ACTOR_OPEN_WAIT_MS = 20_000;

const SOLE_RUN_FIELDS = ['soleRun', 'run', 'attempt', 'state', 'exitCode', 'reason', 'startedAt', 'endedAt', 'location'];

/** The run folded into a compacted record (SOLE_RUN_FIELDS, in order), as its runs list held it. */
function soleRun([folded, run, attempt, state, exitCode, reason, startedAt, endedAt, location]: (string | null)[]): RunEntry[] {
  if (folded !== '1' || !run || !state) return [];
  const entry: RunEntry = {
    run: Number(run), attempt: Number(attempt ?? 1), outcome: state, exitCode: exitCode ?? '', reason: reason ?? '',
    startedAt: startedAt ? Number(startedAt) : null, endedAt: Number(endedAt), location: location ?? null,
  };
  return [entry];
}

/** A hash of JSON values, parsed (a value that is not JSON throws: these records are the store's own). */
function parseHash<T>(hash: Record<string, string>): Map<string, T> {
  return new Map(Object.entries(hash).map(([field, json]) => [field, JSON.parse(json) as T]));
}

export class Store {
  /**
   * The key names, and below the connection itself: for specs, chaos and bench to inspect Redis
   * with. Product code (lib/, actors/) goes through the methods: spec/store.spec.ts reads
   * the sources to hold that.
   */
  readonly keys: Keys;
  private readonly scripts: Scripts;
  /** Through Sentinels only: starts wait for a replica (replica-wait.ts). */
  private readonly replicaWait: ReplicaWait | null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly redis: Redis,
    deployment: string,
    readonly url: string,
    /** The node whose own keys (queues, local slots, run logs) this store names: lib/nodes/. */
    readonly node: string = defaultNodeName(),
  ) {
    this.keys = new Keys(deployment, node);
    this.scripts = new Scripts(redis, this.keys);
    this.replicaWait = isSentinelAddress(url) ? new ReplicaWait(redis) : null;
  }

  /**
   * Connects. With the 'actor' role it first waits out a Redis that refuses connections for up
   * to `waitMs` (default ACTOR_OPEN_WAIT_MS): an actor restarted while redis-server restarts (a
   * crash and a kill -9 together, chaos seed 32865) waits for it as a running actor would, rather
   * than die at birth. Anything else (a wrong password, a certificate) fails at once, as does
   * everything with the 'cli' role: a person is waiting.
   */
  static async open(url: string, deployment: string, role: ConnectionRole, options: { waitMs?: number; node?: string } = {}): Promise<Store> {
    const deadline = Date.now() + (options.waitMs ?? (role === 'actor' ? ACTOR_OPEN_WAIT_MS : 0));
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      const redis = createRedis(url, role);
      try {
        await redis.connect();
        return new Store(redis, deployment, url, options.node);
      } catch (err) {
        redis.disconnect();
        if (!isConnectionLoss(err) || Date.now() + delay > deadline) {
          throw new RedisUnavailableError(`cannot reach Redis at ${describeRedis(url)} (${(err as Error).message})`, { cause: err });
        }
      }
      await sleep(delay);
    }
  }

  // ---- transitions (one Lua script each: lua/<name>-*.lua) ----------------------------------

  /** `queue`: new jobs on Job_Queue (addJobs-N.lua); their ids, in order. Idempotent per token. */
  async addJobs(jobs: NewJob[], now = Date.now()): Promise<string[]> {
    const SHARE = 250;
    // One addJobs script per SHARE jobs (each atomic, and idempotent by the jobs' tokens), sent
    // with a turn of the event loop after each: the first jobs reach Redis (and the manager
    // starts on them) while the rest are still being encoded, rather than after all 5,000.
    const shares: Promise<[Error | null, unknown][] | null>[] = [];
    for (let start = 0; start < jobs.length; start += SHARE) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      const pipeline = this.redis.pipeline();
      this.scripts.addJobs(pipeline, jobs.slice(start, start + SHARE), now);
      const replies = pipeline.exec();
      replies.catch(() => {}); // handled below, once every share is sent
      shares.push(replies);
    }
    const ids: string[] = [];
    for (const replies of await Promise.all(shares)) {
      for (const [err, share] of replies ?? []) {
        if (err) throw err;
        ids.push(...(share as (string | number)[]).map(String));
      }
    }
    await this.replicaWait?.confirm('new jobs');
    return ids;
  }

  /**
   * `queue` of a job file with `Each:`: its jobs, one per row, with ids first .. first + n - 1
   * (returned: first). The ids and the shared definition are stored first (addSweep), then the
   * jobs in batches of SWEEP_BATCH (addSweepJobs), a few pipelined at once. Idempotent per
   * token: the same call again (after a lost reply, or a crash half way) gets the same ids and
   * writes only the jobs not written yet.
   */
  async addSweep(sweep: NewSweep, now = Date.now()): Promise<string> {
    const first = await this.scripts.addSweep(sweep, now);
    // Every batch is sent at once, a turn of the event loop after each: Redis runs the first
    // (and the manager starts on its jobs) while the next are being encoded.
    const batches: Promise<number>[] = [];
    for (let from = 0; from < sweep.rows.length; from += SWEEP_BATCH) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      const batch = this.scripts.addSweepJobs(sweep, Number(first), from, Math.min(from + SWEEP_BATCH, sweep.rows.length), now);
      batch.catch(() => {}); // thrown below, once every batch is sent
      batches.push(batch);
    }
    await Promise.all(batches);
    await this.replicaWait?.confirm('new jobs');
    return first;
  }

  /** The oldest `max` entries of Job_Queue, oldest first (the manager is their only reader). */
  async readIntake(max: number): Promise<string[]> {
    const entries = await this.redis.lrange(this.keys.jobQueue, -max, -1);
    return entries.reverse();
  }

  /** As readIntake, each entry with these fields of its job record, in one round trip (readIntake-2.lua). */
  async readIntakeFields(max: number, fields: string[]): Promise<IntakeEntry[]> {
    return this.scripts.readIntake(max, fields);
  }

  /** The manager's decisions on intake entries: to a location's queue, or rejected (route). */
  async route(decisions: RouteDecision[], now = Date.now()): Promise<{ routed: number; rejected: number }> {
    if (decisions.length === 0) return { routed: 0, rejected: 0 };
    return this.scripts.route(decisions, now);
  }

  /** Due retries back to their queues, then jobs granted the free slots of `pools`, in order (grant). */
  async grant(pools: GrantPool[], budget: number, now = Date.now()): Promise<{ granted: number; nextDueMs: number | null }> {
    return this.scripts.grant(pools, budget, now);
  }

  /** A granted run that provably never launched, under a new run number (relaunch). */
  async relaunch(id: string, oldRun: number, now = Date.now()): Promise<TakenJob | 'cancelled' | null> {
    const job = await this.scripts.relaunch(id, oldRun, now);
    if (job && job !== 'cancelled') await this.replicaWait?.confirm('a relaunch');
    return job;
  }

  /** Runs seen starting (markRunning). Returns the earliest Running_Queue score it gave (null: none changed). */
  async markRunning(started: RunStarted[], now = Date.now()): Promise<number | null> {
    if (started.length === 0) return null;
    const earliest = await this.scripts.markRunning(started, now);
    await this.replicaWait?.confirm('runs started');
    return earliest;
  }

  /** Records ended runs; their freed slots go to waiting jobs of `pools` (finishRun). */
  async finishRuns(finished: RunFinished[], pools: GrantPool[], now = Date.now()): Promise<{ recorded: number; handedOff: number }> {
    if (finished.length === 0) return { recorded: 0, handedOff: 0 };
    // Confirmed too: once an end is recorded, the fetcher forgets the run's log lines, so an end
    // lost in a failover would leave the job running with no one to end it.
    const recorded = await this.scripts.finishRun(finished, pools, now);
    await this.replicaWait?.confirm('runs ended');
    return recorded;
  }

  /** Notes a run's failed Downloads on its job (none: clears the note); see lua/noteDownloads-1.lua. */
  async noteDownloads(id: string, run: number, failed: DownloadFailure[]): Promise<boolean> {
    return this.scripts.noteDownloads(id, run, failed);
  }

  /**
   * Before a launch batch is sent to `host` (leaseLaunch-N.lua): null when the host is marked
   * down (nothing may be launched there); else the launch lease is recorded and the ids of the
   * jobs whose given run is still current there are returned.
   */
  async leaseLaunch(host: string, runs: { id: string; run: number }[], now = Date.now()): Promise<Set<string> | null> {
    return this.scripts.leaseLaunch(host, runs, now);
  }

  /** When the starter last sent each host a launch (its launch lease), by host name. */
  async launchLeases(): Promise<Map<string, number>> {
    const hash = await this.redis.hgetall(this.keys.hostLeases);
    return new Map(Object.entries(hash).map(([host, at]) => [host, Number(at)]));
  }

  /**
   * A run given up on and found still on its host is killed: its run entry says fenced
   * (fenceRun-1.lua). False when the run has no entry or ended by itself (then it is not fenced).
   */
  async fenceRun(id: string, run: number, note: string, stoppedAt: number | null, now = Date.now()): Promise<boolean> {
    return this.scripts.fenceRun(id, run, note, stoppedAt, now);
  }

  /** Step progress of running jobs, for `show` (saveProgress). */
  async saveProgress(progress: { id: string; run: number; steps: unknown[] }[]): Promise<void> {
    if (progress.length === 0) return;
    await this.scripts.saveProgress(progress);
  }

  /**
   * Cancel and Timeout for running jobs that are due, one step each (enforceLimits): per run (at
   * its current run; one not running at that run is left out), whether to send SIGTERM now
   * (reason 'cancelled', or 'timed out': past its deadline, recorded in `timedOut`), SIGKILL now
   * (still running KillGrace after the TERM), or nothing yet (signal null); its next look is
   * already set in Running_Queue. The caller sends the signals; `graceMs` is KillGrace.
   */
  async enforceLimits(runs: PolledRun[], now: number, graceMs: number): Promise<LimitVerdict[]> {
    if (runs.length === 0) return [];
    return this.scripts.enforceLimits(runs, graceMs, now);
  }

  /**
   * Not finished: look at these jobs again at `at` (their Running_Queue scores; a job no longer
   * there is not put back). One ZADD XX: atomic.
   */
  async lookAgain(looks: { id: string; at: number }[]): Promise<void> {
    if (looks.length === 0) return;
    await this.redis.zadd(this.keys.runningQueue, 'XX', ...looks.flatMap((e) => [e.at, e.id]));
  }

  /**
   * Jobs in Running_Queue that are not running any more (ended by another path, or no record)
   * leave it; one running again meanwhile (a newer run) stays (dropFromRunning).
   */
  async dropFromRunning(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.scripts.dropFromRunning(ids);
  }

  /** Tells up to `max` jobs waiting for `location` why they wait (explainWait; the reason `jobs` shows). */
  async explainWait(location: Location, reason: string, max = 100): Promise<number> {
    return this.scripts.explainWait(location, reason, max);
  }

  /** `cancel` (cancel): per id 'cancelled', 'cancelling', 'unknown' or the final state it had. */
  async cancel(ids: string[], now = Date.now()): Promise<string[]> {
    if (ids.length === 0) return [];
    const states = await this.scripts.cancel(ids, now);
    await this.replicaWait?.confirm('a cancel');
    return states;
  }

  /**
   * Runs failed or cancelled jobs again (retry): each goes back to queued with a fresh attempt
   * count. Returns per id 'queued', 'unknown', or the state it had and kept.
   */
  async retry(ids: string[], now = Date.now()): Promise<string[]> {
    if (ids.length === 0) return [];
    const states = await this.scripts.retry(ids, now);
    await this.replicaWait?.confirm('a retry');
    return states;
  }

  // ---- retention (lib/retention): compaction and removal of finished jobs -------------------

  /** Finished jobs compacted (compactJobs: what only running needed goes); how many were. */
  async compactJobs(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.scripts.compactJobs(ids);
  }

  /**
   * Finished jobs removed from Redis (removeJobs): per id 'removed', 'unknown', or the state of a
   * job that is not final (kept). Their files are the caller's to remove, for 'removed' only.
   */
  async removeJobs(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return this.scripts.removeJobs(ids);
  }

  /**
   * Up to `count` job ids below `below` (an id; Infinity: from the newest), newest first, with
   * the fields asked for: the way retention and purge walk every job without holding them all.
   */
  async jobPage(below: number, count: number, fields: string[]): Promise<{ id: string; fields: (string | null)[] }[]> {
    const ids = await this.redis.zrevrangebyscore(this.keys.jobs, below === Infinity ? '+inf' : `(${below}`, '-inf', 'LIMIT', 0, count);
    const values = await this.getFields(ids, fields);
    return ids.map((id, i) => ({ id, fields: values[i] }));
  }

  // ---- reads -------------------------------------------------------------------------------

  // A sweep's job holds only its row: its spec, raw, file and baseDir are its sweep's, laid over
  // with its row by sweep-rows.ts, so that every reader sees the job's whole definition.

  async getJob(id: string): Promise<JobRecord | null> {
    return (await this.getJobs([id]))[0];
  }

  async getJobs(ids: string[]): Promise<(JobRecord | null)[]> {
    return (await readRecords(this.redis, this.keys, ids)).map((hash) => (hash ? parseJobRecord(hash) : null));
  }

  /** Some fields of each job record, in the order asked (null: no such field, or no such job). */
  async getFields(ids: string[], fields: string[]): Promise<(string | null)[][]> {
    return readFields(this.redis, this.keys, ids, fields);
  }

  /** Job ids, newest first. */
  async jobIds(offset: number, count: number): Promise<string[]> {
    return this.redis.zrevrange(this.keys.jobs, offset, offset + count - 1);
  }

  /** A sweep's shared definition, as the manager checks it: [raw, file, baseDir] (null where missing). */
  async sweepDefinition(first: string): Promise<(string | null)[]> {
    return this.redis.hmget(this.keys.sweep(first), 'raw', 'file', 'baseDir');
  }

  /** The ids of the jobs that exist from `first` to `last` (both included), in order: one ZRANGE. */
  async jobIdsBetween(first: number, last: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.jobs, first, last);
  }

  /** Those of `ids` that name a job (in Jobs), in the order given: one ZMSCORE. */
  async existingJobIds(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const scores = await this.redis.zmscore(this.keys.jobs, ...ids);
    return ids.filter((_, i) => scores[i] !== null);
  }

  /**
   * What the name index holds for `name` (Named:<name>, written as jobs are queued): job ids,
   * and the ranges (`first-last`) of the sweeps of that name, oldest first.
   */
  async namedEntries(name: string): Promise<string[]> {
    return this.redis.zrange(this.keys.named(name), 0, -1);
  }

  /**
   * The job's finished runs; an entry that is not one (a corrupt record) is left out. A compacted
   * job whose one run was folded into its record (lua/compactJobs-N.lua) has it read from there.
   */
  async runsOf(id: string): Promise<RunEntry[]> {
    const entries = await this.redis.lrange(this.keys.jobRuns(id), 0, -1);
    if (entries.length === 0) return soleRun(await this.redis.hmget(this.keys.job(id), ...SOLE_RUN_FIELDS));
    return entries.map((e) => parseJson(e)).filter((e): e is RunEntry => e !== null && typeof e === 'object' && typeof (e as RunEntry).run === 'number');
  }

  /** How many slots each location has taken, in the order given. */
  async slotsUsed(locations: Location[]): Promise<number[]> {
    return Promise.all(locations.map((location) => this.redis.scard(this.keys.slotSet(location))));
  }

  /** How many jobs wait in the queue of `location` for a slot (retries in Delayed not counted). */
  async waitingCount(location: Location): Promise<number> {
    return this.redis.llen(this.keys.locationQueue(location));
  }

  /** The ids of the jobs whose launch payloads wait in Granted_Queue. */
  async grantedQueueJobIds(): Promise<Set<string>> {
    const payloads = await this.redis.lrange(this.keys.grantedQueue, 0, -1);
    return new Set(payloads.map((p) => p.slice(0, p.indexOf('\n'))));
  }

  /** Running_Queue: up to `max` ids due at `now` (score <= now), earliest first. */
  async dueRunning(now: number, max: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.runningQueue, '-inf', now, 'LIMIT', 0, max);
  }

  /** When the earliest job in Running_Queue is due; null when none runs. */
  async nextDueAt(): Promise<number | null> {
    const [, score] = await this.redis.zrange(this.keys.runningQueue, 0, 0, 'WITHSCORES');
    return score === undefined ? null : Number(score);
  }

  /** The id of the newest entry of the Events stream ('0-0' when it is empty). */
  async lastEventId(): Promise<string> {
    const newest = await this.redis.xrevrange(this.keys.events, '+', '-', 'COUNT', 1);
    return newest[0]?.[0] ?? '0-0';
  }

  /** The intake and hand-off queues, and for each location its waiting jobs and used slots. */
  async queueDepths(locations: Location[]): Promise<QueueDepths> {
    const k = this.keys;
    const pipeline = this.redis.pipeline().llen(k.jobQueue).llen(k.grantedQueue).zcard(k.runningQueue).zcard(k.delayed);
    for (const location of locations) pipeline.llen(k.locationQueue(location)).scard(k.slotSet(location));
    const counts = ((await pipeline.exec()) ?? []).map(([err, n]) => (err ? 0 : Number(n)));
    return {
      Job_Queue: counts[0], Granted_Queue: counts[1], Running_Queue: counts[2], Delayed: counts[3],
      locations: locations.map((location, i) => ({ location, waiting: counts[4 + 2 * i], used: counts[5 + 2 * i] })),
    };
  }

  /** Ids of the jobs holding a slot of `location` (local, host:<name>). */
  async slotHolders(location: Location): Promise<string[]> {
    const ids = await this.redis.smembers(this.keys.slotSet(location));
    return ids.sort((a, b) => Number(a) - Number(b));
  }

  /**
   * The names of the hosts whose slot set holds a job, known or not (SCAN: one pass over the
   * keys, for a fetcher starting, to find jobs granted to a host that is gone since).
   */
  async hostsHoldingSlots(): Promise<string[]> {
    const { match, prefix } = this.keys.remoteJobsPattern;
    const names: string[] = [];
    // SCAN reads one server's keys: on a Cluster, the master of the deployment's hash slot.
    const scanned = isClusterAddress(this.url) ? await this.slotMaster() : this.redis;
    let cursor = '0';
    do {
      const [next, keys] = await scanned.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) if ((await this.redis.scard(key)) > 0) names.push(key.slice(prefix.length));
    } while (cursor !== '0');
    return names.sort();
  }

  /** On a Cluster, the connection to the master that holds this deployment's hash slot. */
  private async slotMaster(): Promise<Redis> {
    const cluster = this.redis as unknown as Cluster;
    const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', this.keys.prefix));
    const [host, port] = (cluster.slots[slot]?.[0] ?? '').split(':');
    const node = cluster.nodes('master').find((n) => n.options.host === host && String(n.options.port) === port);
    if (!node) throw new Error(`no master of the Redis Cluster serves hash slot ${slot} (of ${this.keys.prefix}) yet`);
    return node;
  }

  /** The EC2 locations (ec2:<image>:<type>) jobs have been queued for. */
  async ec2Locations(): Promise<Location[]> {
    return (await this.redis.smembers(this.keys.ec2Locations)).sort();
  }

  /** One PING's round trip, in milliseconds. */
  async roundTripMs(): Promise<number> {
    const started = process.hrtime.bigint();
    await this.redis.ping();
    return Number(process.hrtime.bigint() - started) / 1e6;
  }

  /**
   * This Redis's id: made by whoever asks first (SET NX, so all agree), kept as long as the data.
   * A Redis that replaces another starts counting jobs from 1 again; its id tells its jobs' files
   * on the hosts from those the old one's jobs left there.
   */
  async storeId(): Promise<string> {
    await this.redis.set(this.keys.storeId, randomBytes(6).toString('hex'), 'NX');
    const id = await this.redis.get(this.keys.storeId);
    if (!id) throw new Error(`${this.keys.storeId} vanished as it was read`);
    return id;
  }

  // ---- hosts, instances, run logs, the supervisor (one command each: atomic) -------------------

  /** Hosts named only by job files (the manager registers them as it accepts such a job). */
  async adhocHosts(): Promise<Map<string, AdhocHostRecord>> {
    return parseHash<AdhocHostRecord>(await this.redis.hgetall(this.keys.hosts));
  }

  async registerHost(name: string, record: AdhocHostRecord): Promise<void> {
    await this.redis.hset(this.keys.hosts, name, JSON.stringify(record));
  }

  async hostStates(): Promise<Map<string, HostState>> {
    return parseHash<HostState>(await this.redis.hgetall(this.keys.hostState));
  }

  async setHostState(name: string, state: HostState): Promise<void> {
    await this.redis.hset(this.keys.hostState, name, JSON.stringify(state));
  }

  /** A host that is gone for good (an EC2 instance terminated) leaves HostState. */
  async forgetHostState(name: string): Promise<void> {
    await this.redis.hdel(this.keys.hostState, name);
  }

  /** Hosts the fetcher cannot reach, since when (see UnreachableRecord). */
  async unreachableHosts(): Promise<Map<string, UnreachableRecord>> {
    return parseHash<UnreachableRecord>(await this.redis.hgetall(this.keys.unreachable));
  }

  async noteUnreachable(host: string, record: UnreachableRecord): Promise<void> {
    await this.redis.hset(this.keys.unreachable, host, JSON.stringify(record));
  }

  async clearUnreachable(host: string): Promise<void> {
    await this.redis.hdel(this.keys.unreachable, host);
  }

  /** The EC2 instances this deployment launched, one record per launch token. */
  async instances(): Promise<InstanceRecord[]> {
    return [...parseHash<InstanceRecord>(await this.redis.hgetall(this.keys.instances)).values()];
  }

  async saveInstance(record: InstanceRecord): Promise<void> {
    await this.redis.hset(this.keys.instances, record.token, JSON.stringify(record));
  }

  async removeInstance(token: string): Promise<void> {
    await this.redis.hdel(this.keys.instances, token);
  }

  async addEc2Location(location: Location): Promise<void> {
    await this.redis.sadd(this.keys.ec2Locations, location);
  }

  /** The run logs of local launchers with jobs in flight: epoch → path. */
  async runLogs(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.keys.runlogs)));
  }

  async registerRunLog(epoch: string, path: string): Promise<void> {
    await this.redis.hset(this.keys.runlogs, epoch, path);
  }

  async forgetRunLog(epoch: string): Promise<void> {
    await this.redis.hdel(this.keys.runlogs, epoch);
  }

  /** A new starter incarnation's number (its launcher and run log are named by it). */
  async nextEpoch(): Promise<string> {
    return String(await this.redis.incr(this.keys.epoch));
  }

  /** How far each host's run log has been read (bytes). */
  async remoteLogOffsets(): Promise<Map<string, number>> {
    const hash = await this.redis.hgetall(this.keys.remoteLogs);
    return new Map(Object.entries(hash).map(([host, offset]) => [host, Number(offset)]));
  }

  async saveRemoteLogOffsets(offsets: Map<string, number>): Promise<void> {
    if (offsets.size) await this.redis.hset(this.keys.remoteLogs, Object.fromEntries(offsets));
  }

  /** The supervisor's heartbeat. */
  async saveSupervisor(record: SupervisorRecord): Promise<void> {
    await this.redis.hset(this.keys.supervisor, { ...record, actors: JSON.stringify(record.actors) });
  }

  async markSupervisorStopped(at: number): Promise<void> {
    await this.redis.hset(this.keys.supervisor, { status: 'stopped', heartbeatAt: at });
  }

  /** The last heartbeat of a supervisor of this deployment; null if none ever ran. */
  async supervisorRecord(): Promise<Partial<SupervisorRecord> | null> {
    return this.readSupervisor(this.keys.supervisor);
  }

  private async readSupervisor(key: string): Promise<Partial<SupervisorRecord> | null> {
    const hash = await this.redis.hgetall(key);
    if (Object.keys(hash).length === 0) return null;
    const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
    return {
      pid: num(hash.pid), host: hash.host, startedAt: num(hash.startedAt), heartbeatAt: num(hash.heartbeatAt),
      status: hash.status, stateDir: hash.stateDir,
      actors: (parseJson(hash.actors) ?? {}) as Record<string, ActorStatus>,
      web: hash.web ?? '',
    };
  }

  // ---- nodes (lib/nodes/: several supervisors on one Redis) ---------------------------------

  /**
   * Claims or renews this store's node (claimNode-1.lua): null when the node is ours now, else
   * the lease of the live supervisor elsewhere that holds it.
   */
  async claimNode(lease: Omit<NodeLease, 'since' | 'renewedAt'>, leaseMs: number, now = Date.now()): Promise<NodeLease | null> {
    return this.scripts.claimNode({ ...lease, since: now, renewedAt: now }, leaseMs, now);
  }

  /** Every node's lease, by name. */
  async nodes(): Promise<Map<string, NodeLease>> {
    return parseHash<NodeLease>(await this.redis.hgetall(this.keys.nodes));
  }

  /** Holds (takes or renews) or releases the EC2 lease for this store's node; returns its holder after (ec2Lease-1.lua). */
  async ec2Lease(mode: 'hold' | 'release', leaseMs: number): Promise<string | null> {
    return this.scripts.ec2Lease(mode, leaseMs);
  }

  /** Who holds the EC2 lease now (null: nobody). */
  async ec2LeaseHolder(): Promise<string | null> {
    return this.redis.get(this.keys.ec2Lease);
  }

  /** A node down longer than `downAfterMs`: its granted, not started jobs go back to their queues (reclaimNode-5.lua). -1: it is not down. */
  async reclaimNode(node: string, downAfterMs: number, now = Date.now()): Promise<number> {
    return this.scripts.reclaimNode(node, downAfterMs, now);
  }

  /**
   * `nodes forget` (forgetNode-11.lua): [given back, queued again, failed, remote runs adopted by
   * this store's node]; the holder's lease when the node is live; null when no such node is known.
   */
  async forgetNode(node: string, leaseMs: number, backoffMs: number, now = Date.now()): Promise<number[] | NodeLease | null> {
    return this.scripts.forgetNode(node, leaseMs, backoffMs, now);
  }

  /** The one supervisor's record from before nodes (the Supervisor hash without a node), or null. */
  async legacySupervisor(): Promise<{ host?: string; stateDir?: string } | null> {
    const hash = await this.redis.hgetall(this.keys.legacy.supervisor);
    return Object.keys(hash).length ? { host: hash.host, stateDir: hash.stateDir } : null;
  }

  /** Whether any key of the one supervisor from before nodes is left (see keys.ts). */
  async hasLegacyKeys(): Promise<boolean> {
    const old = this.keys.legacy;
    return (await this.redis.exists(old.localJobs, old.grantedQueue, old.runningQueue, old.runlogs, old.supervisor)) > 0;
  }

  /** Adopts the keys of the one supervisor from before nodes as this node's (adoptLegacy-10.lua). */
  async adoptLegacy(): Promise<number> {
    return this.scripts.adoptLegacy();
  }

  /** The last heartbeat of another node's supervisor (null: none). */
  async supervisorRecordOf(node: string): Promise<Partial<SupervisorRecord> | null> {
    return this.readSupervisor(this.keys.supervisorOf(node));
  }

  /** Fault injection: asks the supervisor to crash an actor (chaos runs, `jobmanager debug`). */
  async requestActorCrash(actor: ActorName): Promise<void> {
    await this.redis.rpush(this.keys.control, `crash ${actor}`);
  }

  async signal(actor: ActorName): Promise<void> {
    await this.redis.lpush(this.keys.signal(actor), 1);
  }

  /** Wakes these nodes' actors (their own Signal:<actor>:<node>). */
  async signalNodes(actor: ActorName, nodes: string[]): Promise<void> {
    if (nodes.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const node of nodes) pipeline.lpush(this.keys.nodeSignal(actor, node), 1);
    await pipeline.exec();
  }

  /** A connection of its own for blocking waits (BLMPOP, XREAD), on this deployment's keys. */
  blocking(log: Logger): BlockingConnection {
    return new BlockingConnection(this.url, log, this.keys);
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await Promise.race([this.redis.quit(), new Promise((r) => setTimeout(r, 1000).unref())]);
      } catch {
        // already gone
      }
      this.redis.disconnect();
    })();
    return this.closing;
  }
}

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChainableCommander, Redis } from 'ioredis';
import { LUA_DIR } from '../util/paths.js';
import type { DownloadFailure } from './job-record.js';
import { nodeLocation, type Keys, type Location } from './keys.js';
import type { NodeLease } from '../nodes/lease.js';
import type { GrantPool, IntakeEntry, LimitVerdict, NewJob, NewSweep, PolledRun, RouteDecision, RunFinished, RunStarted, TakenJob } from './types.js';

// The one caller of the Lua scripts (lua/, one state change each), as BullMQ's Scripts class:
// per script one method that lays out its KEYS and ARGV as the script's header says and turns
// the reply into a typed value. Every key is made by Keys (keys.ts) and passed in KEYS; a key a
// script only finds inside Redis (the record of an id popped from a queue) it builds from the
// key prefix, itself passed as a KEY, with lua/includes/keys.lua.
//
// A script's file is lua/<name>-<number of keys>.lua, or lua/<name>-N.lua when the number of keys
// depends on the call (one key per job given: the batch scripts); ioredis is then told the count
// at each call. `-- @include name` brings in lua/includes/name.lua (shared code, as in BullMQ).

interface ScriptSource {
  lua: string;
  /** null: given at each call (a -N.lua script). */
  numberOfKeys: number | null;
}

type Target = Redis | ChainableCommander;
type Arg = string | number;

/**
 * Every script runs as a Redis 7 script with flags (none): on Redis Cluster the server then
 * refuses a script that touches a key outside the hash slot of the keys it was given, rather
 * than let it work by chance on one node (all our keys share the {deployment} tag: one slot).
 */
const SHEBANG = '#!lua';

let loaded: Map<string, ScriptSource> | null = null;

export function scriptSources(): Map<string, ScriptSource> {
  if (loaded) return loaded;
  loaded = new Map();
  for (const file of readdirSync(LUA_DIR)) {
    const match = /^(\w+)-(\d+|N)\.lua$/.exec(file);
    if (!match) continue;
    const lua = `${SHEBANG}\n${withIncludes(readFileSync(join(LUA_DIR, file), 'utf8'))}`;
    loaded.set(match[1], { lua, numberOfKeys: match[2] === 'N' ? null : Number(match[2]) });
  }
  return loaded;
}

/**
 * `-- @include name` lines replaced by lua/includes/name.lua; an include may include others, and
 * each goes into a script once (the first time it is named: name the ones it needs first).
 */
export function withIncludes(lua: string, included = new Set<string>()): string {
  return lua.replace(/^-- @include (\w+)$/gm, (_, name: string) => {
    if (included.has(name)) return '';
    included.add(name);
    return withIncludes(readFileSync(join(LUA_DIR, 'includes', `${name}.lua`), 'utf8'), included);
  });
}

/**
 * A launch payload from Granted_Queue (see lua/includes/grantFrom.lua), or null if it is not one:
 * ids, run numbers and locations become paths and run log lines, so nothing else is let through.
 */
export function parseGrantedPayload(payload: string): TakenJob | null {
  const [id, run, attempt, where, spec, raw, row, name] = payload.split('\n');
  if (!/^\d+$/.test(id ?? '') || !/^\d+$/.test(run ?? '') || !/^\d+$/.test(attempt ?? '')) return null;
  if (!/^(local|local:[A-Za-z0-9][A-Za-z0-9._-]*|host:[A-Za-z0-9._:-]+)$/.test(where ?? '') || spec === undefined) return null;
  const job: TakenJob = { id, run: Number(run), attempt: Number(attempt), where, spec, raw: raw ?? 'null' };
  // A sweep's job: its row and name follow, tagged (lua/includes/grantFrom.lua); other fields are ignored.
  if (row?.startsWith('row:') && name?.startsWith('name:')) job.sweepRow = { params: row.slice(4), name: name.slice(5) };
  return job;
}

export class Scripts {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {
    const builtin = new Set(redis.getBuiltinCommands());
    for (const [name, { lua, numberOfKeys }] of scriptSources()) {
      // A script named like a Redis command would never run: the command would, in its place.
      if (builtin.has(name.toLowerCase())) throw new Error(`lib/store/lua/${name}-*.lua is named like the Redis command ${name.toUpperCase()}: rename it`);
      if (!(name in redis)) redis.defineCommand(name, numberOfKeys === null ? { lua } : { lua, numberOfKeys });
    }
  }

  private call(name: string, keys: string[], args: Arg[], target: Target = this.redis): Promise<unknown> {
    const source = scriptSources().get(name);
    if (!source) throw new Error(`no Lua script ${name} in ${LUA_DIR}`);
    const run = (target as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>)[name].bind(target);
    if (source.numberOfKeys === null) return run(keys.length, ...keys, ...args);
    if (keys.length !== source.numberOfKeys) throw new Error(`${name}-${source.numberOfKeys}.lua called with ${keys.length} keys`);
    return run(...keys, ...args);
  }

  /** The pools as lua/includes/pools.lua reads them: their slot sets and queues, and their tuples. */
  private pools(pools: GrantPool[]): { keys: string[]; args: Arg[] } {
    const queues = [...new Set(pools.flatMap((p) => p.queues))];
    return {
      keys: [...pools.map((p) => this.keys.slotSet(p.location)), ...queues.map((q) => this.keys.locationQueue(q))],
      args: [pools.length, queues.length, ...pools.flatMap((p) => [p.location, p.limit, p.queues.join(' ')]), ...queues],
    };
  }

  /** A share of `queue`'s job files, queued on `pipeline` (its reply, their ids, comes with the pipeline's). */
  addJobs(pipeline: ChainableCommander, jobs: NewJob[], now: number): void {
    const k = this.keys;
    const keys = [k.jobQueue, k.jobs, k.nextId, k.events, k.signal('manager'), k.prefix];
    const args: Arg[] = [now];
    for (const job of jobs) {
      keys.push(k.submission(job.token), k.named(job.name));
      args.push(job.name, job.classType, job.file, job.baseDir, JSON.stringify(job.raw));
    }
    void this.call('addJobs', keys, args, pipeline);
  }

  async readIntake(max: number, fields: string[]): Promise<IntakeEntry[]> {
    const flat = (await this.call('readIntake', [this.keys.jobQueue, this.keys.prefix], [max, ...fields])) as (string | null)[];
    const entries: IntakeEntry[] = [];
    for (let i = 0; i < flat.length; i += 1 + fields.length) entries.push({ entry: flat[i]!, fields: flat.slice(i + 1, i + 1 + fields.length) });
    return entries;
  }

  /** Reserves a sweep's ids and stores its shared definition; its first id (addSweep-4.lua). */
  async addSweep(sweep: NewSweep, now: number): Promise<string> {
    const k = this.keys;
    return String(await this.call('addSweep', [k.nextId, k.submission(sweep.token), k.named(sweep.name), k.prefix],
      [now, sweep.rows.length, sweep.name, sweep.classType, sweep.file, sweep.baseDir, JSON.stringify(sweep.raw)]));
  }

  /** Jobs `from` .. `to` - 1 of the sweep whose first id is `first`; how many were written (addSweepJobs-N.lua). */
  async addSweepJobs(sweep: NewSweep, first: number, from: number, to: number, now: number): Promise<number> {
    const k = this.keys;
    const keys = [k.jobQueue, k.jobs, k.events, k.signal('manager'), k.sweep(String(first))];
    const args: Arg[] = [now, first, sweep.name, sweep.classType, from];
    for (let i = from; i < to; i++) {
      keys.push(k.job(String(first + i)));
      args.push(JSON.stringify(sweep.rows[i]));
    }
    return (await this.call('addSweepJobs', keys, args)) as number;
  }

  async route(decisions: RouteDecision[], now: number): Promise<{ routed: number; rejected: number }> {
    const k = this.keys;
    const locations = [...new Set(decisions.flatMap((d) => (d.location === null ? [] : [d.location])))];
    const args: Arg[] = [now, locations.length, ...locations];
    for (const d of decisions) args.push(d.entry, d.location ?? '', d.detail, d.pollMs, d.timeoutMs ?? '', d.retries, d.sweep ?? '');
    const keys = [k.jobQueue, k.events, k.nextId, k.jobs, k.prefix, ...locations.map((l) => k.locationQueue(l)), ...decisions.map((d) => k.job(d.entry))];
    const [routed, rejected] = (await this.call('route', keys, args)) as number[];
    return { routed, rejected };
  }

  async grant(pools: GrantPool[], budget: number, now: number): Promise<{ granted: number; nextDueMs: number | null }> {
    const k = this.keys;
    const p = this.pools(pools);
    const [granted, nextDue] = (await this.call('grant', [k.grantedQueue, k.delayed, k.events, k.hostState, k.prefix, ...p.keys], [now, budget, k.node, ...p.args])) as number[];
    return { granted, nextDueMs: nextDue < 0 ? null : nextDue };
  }

  async relaunch(id: string, oldRun: number, now: number): Promise<TakenJob | 'cancelled' | null> {
    const payload = (await this.call('relaunch', [this.keys.events, this.keys.job(id), this.keys.prefix], [now, id, oldRun])) as string | null;
    if (payload === 'cancelled') return 'cancelled';
    return payload ? parseGrantedPayload(payload) : null;
  }

  async markRunning(started: RunStarted[], now: number): Promise<number | null> {
    const k = this.keys;
    const args: Arg[] = [now, k.node];
    for (const s of started) args.push(s.id, s.run, s.pid, s.startedAt, s.epoch);
    const [, earliest] = (await this.call('markRunning', [k.runningQueue, k.events, ...started.map((s) => k.job(s.id))], args)) as number[];
    return earliest < 0 ? null : earliest;
  }

  async finishRun(finished: RunFinished[], pools: GrantPool[], now: number): Promise<{ recorded: number; handedOff: number }> {
    const k = this.keys;
    const p = this.pools(pools);
    const keys = [k.runningQueue, k.delayed, k.events, k.grantedQueue, k.signal('manager'), k.hostState, k.prefix, ...p.keys];
    const args: Arg[] = [now, k.node, ...p.args];
    for (const f of finished) {
      keys.push(k.job(f.id), k.jobRuns(f.id));
      args.push(f.id, f.run, f.outcome, f.exitCode ?? '', f.reason, f.result === undefined || f.result === null ? '' : JSON.stringify(f.result), f.steps ? JSON.stringify(f.steps) : '', f.backoffMs, f.startedAt ?? '');
    }
    const [recorded, handedOff] = (await this.call('finishRun', keys, args)) as number[];
    return { recorded, handedOff };
  }

  async noteDownloads(id: string, run: number, failed: DownloadFailure[]): Promise<boolean> {
    const note = failed.length ? JSON.stringify({ run, failed }) : '';
    return (await this.call('noteDownloads', [this.keys.job(id)], [run, note])) === 1;
  }

  async saveProgress(progress: { id: string; run: number; steps: unknown[] }[]): Promise<number> {
    return (await this.call('saveProgress', progress.map((p) => this.keys.job(p.id)), progress.flatMap((p) => [p.run, JSON.stringify(p.steps)]))) as number;
  }

  async cancel(ids: string[], now: number): Promise<string[]> {
    const k = this.keys;
    const keys = [k.jobQueue, k.legacy.grantedQueue, k.delayed, k.legacy.runningQueue, k.events, k.signal('fetcher'), k.signal('manager'), k.prefix, ...ids.map((id) => k.job(id))];
    return (await this.call('cancel', keys, [now, ...ids])) as string[];
  }

  async retry(ids: string[], now: number): Promise<string[]> {
    const k = this.keys;
    return (await this.call('retry', [k.jobQueue, k.events, k.signal('manager'), k.prefix, ...ids.map((id) => k.job(id)), ...ids.map((id) => k.jobRuns(id))], [now, ...ids])) as string[];
  }

  async leaseLaunch(host: string, runs: { id: string; run: number }[], now: number): Promise<Set<string> | null> {
    const k = this.keys;
    const current = (await this.call('leaseLaunch', [k.hostState, k.hostLeases, ...runs.map((r) => k.job(r.id))], [now, host, ...runs.flatMap((r) => [r.id, r.run])])) as string[] | null;
    return current ? new Set(current) : null;
  }

  async fenceRun(id: string, run: number, note: string, stoppedAt: number | null, now: number): Promise<boolean> {
    return (await this.call('fenceRun', [this.keys.jobRuns(id)], [run, now, stoppedAt ?? '', note])) === 1;
  }

  async enforceLimits(runs: PolledRun[], graceMs: number, now: number): Promise<LimitVerdict[]> {
    const k = this.keys;
    const reply = (await this.call('enforceLimits', [k.runningQueue, ...runs.map((r) => k.job(r.id))], [now, graceMs, ...runs.flatMap((r) => [r.id, r.run])])) as (string | number)[];
    return runs.flatMap(({ id, run }, i): LimitVerdict[] => {
      const [action, nextLookAt] = [String(reply[2 * i]), Number(reply[2 * i + 1])];
      if (action === 'wait') return [{ id, run, signal: null, reason: null, nextLookAt }];
      if (action === 'cancelled' || action === 'timed out') return [{ id, run, signal: 'SIGTERM', reason: action, nextLookAt }];
      if (action === 'kill') return [{ id, run, signal: 'SIGKILL', reason: `still running ${graceMs}ms after SIGTERM`, nextLookAt }];
      return []; // ignored: not running at that run
    });
  }

  async dropFromRunning(ids: string[]): Promise<number> {
    const k = this.keys;
    return (await this.call('dropFromRunning', [k.runningQueue, ...ids.map((id) => k.job(id))], ids)) as number;
  }

  async compactJobs(ids: string[]): Promise<number> {
    return (await this.call('compactJobs', ids.flatMap((id) => [this.keys.job(id), this.keys.jobRuns(id)]), ids)) as number;
  }

  async removeJobs(ids: string[]): Promise<string[]> {
    const k = this.keys;
    return (await this.call('removeJobs', [k.jobs, k.prefix, ...ids.flatMap((id) => [k.job(id), k.jobRuns(id)])], ids)) as string[];
  }

  async claimNode(lease: NodeLease, leaseMs: number, now: number): Promise<NodeLease | null> {
    const held = (await this.call('claimNode', [this.keys.nodes], [now, this.keys.node, lease.host, lease.pid, lease.stateDir, leaseMs, lease.localMaxJobs, lease.status])) as string | null;
    return held ? (JSON.parse(held) as NodeLease) : null;
  }

  async ec2Lease(mode: 'hold' | 'release', leaseMs: number): Promise<string | null> {
    return (await this.call('ec2Lease', [this.keys.ec2Lease], [this.keys.node, leaseMs, mode])) as string | null;
  }

  async reclaimNode(node: string, downAfterMs: number, now: number): Promise<number> {
    const k = this.keys;
    return (await this.call('reclaimNode', [k.nodes, k.grantedQueueOf(node), k.events, k.signal('manager'), k.prefix], [now, node, downAfterMs])) as number;
  }

  async forgetNode(node: string, leaseMs: number, backoffMs: number, now: number): Promise<number[] | NodeLease | null> {
    const k = this.keys;
    const keys = [k.nodes, k.grantedQueueOf(node), k.runningQueueOf(node), k.slotSet(nodeLocation(node)), k.runlogsOf(node), k.supervisorOf(node), k.events, k.delayed, k.signal('manager'), k.prefix, k.runningQueue];
    const reply = (await this.call('forgetNode', keys, [now, node, leaseMs, backoffMs, k.node])) as (number | string)[];
    if (reply[0] === -2) return null;
    if (reply[0] === -1) return JSON.parse(String(reply[1])) as NodeLease;
    return reply.map(Number);
  }

  async adoptLegacy(): Promise<number> {
    const k = this.keys;
    const old = k.legacy;
    const keys = [old.localJobs, old.grantedQueue, old.runningQueue, old.runlogs, old.supervisor, k.localJobs, k.grantedQueue, k.runningQueue, k.runlogs, k.prefix];
    return (await this.call('adoptLegacy', keys, [k.node, nodeLocation(k.node)])) as number;
  }

  async explainWait(location: Location, reason: string, max: number): Promise<number> {
    return (await this.call('explainWait', [this.keys.locationQueue(location), this.keys.prefix], [reason, max])) as number;
  }
}

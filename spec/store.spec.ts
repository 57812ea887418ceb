import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { LUA_DIR, PROJECT_ROOT } from '../lib/util/paths.js';
import { Keys, nodeLocation } from '../lib/store/keys.js';
import { defaultNodeName } from '../lib/nodes/node-name.js';
import { withIncludes } from '../lib/store/scripts.js';
import { RedisServer } from './support/redis-server.js';
import { Store, parseGrantedPayload, type GrantPool, type NewJob, type Outcome, type RouteDecision, type RunFinished, type TakenJob } from '../lib/store/store.js';
import { validateJobSpec } from '../lib/jobfile/job-spec.js';
import { JobSpecError } from '../lib/util/errors.js';
import type { Logger } from '../lib/util/log.js';
import { StopSignal } from '../lib/util/stop-signal.js';
import { waitFor } from './support/wait-for.js';

/** This store's node's local slots (the default node: this machine's host name). */
const HERE = nodeLocation(defaultNodeName());

// Every transition of the durable store (one Lua script each, lib/store/lua), run against a real
// redis-server. Time is an argument (`now`), so backoffs and deadlines are moved past by passing a
// later time, never by sleeping. Each test has a deployment of its own: no two share a key.
//
//   addJob ──> Job_Queue ──route──> Job_Queue:local ──grant──> Granted_Queue ──(starter)──┐
//                  └──> rejected        ^        (slot taken in LocalJobs)               │
//                                       │                                    markRunning  v
//        Delayed ──grant (when due)─────┘  <──retry── finishRun <── Running_Queue <── running
//                                                         └──> succeeded | failed | cancelled
//                                                              (slot freed and handed on)

const T0 = 1_700_000_000_000;
const POLL_MS = 10_000;
const DOC = { Order: [{ Run: 'true' }] };

function specOf(doc: unknown, file = '/x/a.yaml'): string {
  return JSON.stringify(validateJobSpec(doc, { file }));
}

/** The reason the manager gives for a job file it cannot use. */
function specError(doc: unknown): string {
  try {
    validateJobSpec(doc, { file: '/x/bad.yaml' });
  } catch (err) {
    if (err instanceof JobSpecError) return err.message;
    throw err;
  }
  throw new Error('expected the job file to be invalid');
}

function newJob(token: string, doc: unknown = DOC): NewJob {
  return { token, name: `job-${token}`, classType: 'Local', file: '/x/a.yaml', baseDir: '/x', raw: doc };
}

interface RouteOptions {
  spec?: string;
  pollMs?: number;
  timeoutMs?: number | null;
  retries?: number;
}

/** The manager's decision for a valid job: the scripts read these copies, never the spec itself. */
function accept(entry: string, o: RouteOptions = {}): RouteDecision {
  return { entry, location: 'local', detail: o.spec ?? specOf(DOC), pollMs: o.pollMs ?? POLL_MS, timeoutMs: o.timeoutMs ?? null, retries: o.retries ?? 0 };
}

function reject(entry: string, reason: string): RouteDecision {
  return { entry, location: null, detail: reason, pollMs: 0, timeoutMs: null, retries: 0 };
}

function ended(id: string, run: number, outcome: Outcome, more: Partial<RunFinished> = {}): RunFinished {
  const ok = outcome === 'succeeded';
  return { id, run, outcome, exitCode: ok ? 0 : 1, reason: ok ? 'exited 0' : 'exited 1', result: null, steps: null, backoffMs: 1000, startedAt: null, ...more };
}

/** Everything one deployment holds, key by key, for "this changed nothing" checks. */
async function dump(db: Redis, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await db.keys(`${prefix}*`)).sort()) {
    const name = key.slice(prefix.length);
    switch (await db.type(key)) {
      case 'string': out[name] = await db.get(key); break;
      case 'list': out[name] = await db.lrange(key, 0, -1); break;
      case 'set': out[name] = (await db.smembers(key)).sort(); break;
      case 'zset': out[name] = await db.zrange(key, 0, -1, 'WITHSCORES'); break;
      case 'hash': out[name] = await db.hgetall(key); break;
      case 'stream': out[name] = await db.xrange(key, '-', '+'); break;
      default: out[name] = `unexpected type of ${key}`;
    }
  }
  return out;
}

/** One deployment of the store, with the steps the actors take spelled as test verbs. */
class Fixture {
  private tokens = 0;
  constructor(readonly store: Store) {}

  get db(): Redis { return this.store.redis; }
  get k() { return this.store.keys; }

  pools(limit: number): GrantPool[] {
    return [{ location: HERE, limit, queues: [HERE, 'local'] }];
  }

  /** `jobmanager queue`: jobs in Job_Queue, oldest first in the returned ids. */
  async add(count: number, doc: unknown = DOC): Promise<string[]> {
    return this.store.addJobs(Array.from({ length: count }, () => newJob(`tok${++this.tokens}`, doc)), T0);
  }

  /** Queued and routed by the manager: waiting in Job_Queue:local. */
  async queue(count: number, o: RouteOptions & { doc?: unknown } = {}): Promise<string[]> {
    const ids = await this.add(count, o.doc ?? DOC);
    const spec = o.spec ?? specOf(o.doc ?? DOC);
    expect(await this.store.route(ids.map((id) => accept(id, { ...o, spec })), T0)).to.deep.equal({ routed: count, rejected: 0 });
    return ids;
  }

  grant(limit: number, now = T0, budget = 100): Promise<{ granted: number; nextDueMs: number | null }> {
    return this.store.grant(this.pools(limit), budget, now);
  }

  /** The starter's take: every payload in Granted_Queue, in the order it pops them. */
  async take(): Promise<TakenJob[]> {
    const taken: TakenJob[] = [];
    let payload: string | null;
    while ((payload = await this.db.rpop(this.k.grantedQueue)) !== null) taken.push(parseGrantedPayload(payload)!);
    return taken;
  }

  start(jobs: TakenJob[], now = T0, startedAt = now): Promise<number | null> {
    return this.store.markRunning(jobs.map((j) => ({ id: j.id, run: j.run, pid: 4000 + Number(j.id), startedAt, epoch: 'e1' })), now);
  }

  /** `count` jobs granted (limit slots), taken by the starter and seen running. */
  async running(count: number, limit: number, o: RouteOptions = {}): Promise<TakenJob[]> {
    await this.queue(count, o);
    await this.grant(limit);
    const jobs = await this.take();
    await this.start(jobs);
    return jobs;
  }

  finish(runs: RunFinished[], limit: number, now: number): Promise<{ recorded: number; handedOff: number }> {
    return this.store.finishRuns(runs, this.pools(limit), now);
  }

  async raw(id: string): Promise<Record<string, string>> {
    return this.db.hgetall(this.k.job(id));
  }

  async state(id: string): Promise<string | undefined> {
    return (await this.store.getJob(id))?.state;
  }

  slots(): Promise<string[]> {
    return this.db.smembers(this.k.localJobs).then((ids) => ids.sort((a, b) => Number(a) - Number(b)));
  }

  waiting(): Promise<string[]> {
    return this.db.lrange(this.k.locationQueue('local'), 0, -1).then((ids) => ids.reverse()); // next to be granted first
  }

  async events(): Promise<Record<string, string>[]> {
    return (await this.db.xrange(this.k.events, '-', '+')).map(([, fields]) => {
      const event: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) event[fields[i]] = fields[i + 1];
      return event;
    });
  }

  dump(): Promise<Record<string, unknown>> {
    return dump(this.db, this.k.prefix);
  }
}

describe('store (Lua transitions on a real redis-server)', function () {
  let server: RedisServer;
  let stores: Store[] = [];
  let deployments = 0;

  async function fixture(): Promise<Fixture> {
    const store = await Store.open(server.url, `t${++deployments}`, 'cli');
    stores.push(store);
    return new Fixture(store);
  }

  before(async function () {
    server = await RedisServer.start();
  });

  afterEach(async function () {
    await Promise.all(stores.map((s) => s.close()));
    stores = [];
  });

  after(async function () {
    await server?.stop();
  });

  describe('addJobs-N.lua', function () {
    it('records a queued job, puts its id on Job_Queue, writes a queued event and wakes the manager', async function () {
      const f = await fixture();
      const [id] = await f.store.addJobs([newJob('a')], T0);
      const job = await f.store.getJob(id);
      expect(job).to.include({ id, name: 'job-a', classType: 'Local', state: 'queued', file: '/x/a.yaml', baseDir: '/x', attempt: 1, run: 0, queuedAt: T0 });
      expect(job!.raw).to.deep.equal(DOC);
      expect(await f.db.lrange(f.k.jobQueue, 0, -1)).to.deep.equal([id]);
      expect(await f.db.zrange(f.k.jobs, 0, -1)).to.deep.equal([id]);
      expect(await f.events()).to.deep.equal([{ job: id, state: 'queued' }]);
      expect(await f.db.llen(f.k.signal('manager'))).to.equal(1);
    });

    it('queues many job files in one step, with one queued event per run of one ClassType', async function () {
      const f = await fixture();
      const thread = { ...newJob('t1'), classType: 'Thread' as const };
      const ids = await f.store.addJobs([newJob('a1'), newJob('a2'), newJob('a3'), thread, newJob('a4')], T0);
      expect(ids.map(Number)).to.deep.equal([1, 2, 3, 4, 5].map((i) => Number(ids[0]) + i - 1));
      expect(await f.events()).to.deep.equal([
        { jobs: `${ids[0]}-${ids[2]}`, state: 'queued' },
        { job: ids[3], state: 'queued' },
        { job: ids[4], state: 'queued' },
      ]);
      expect(await f.store.readIntake(10)).to.deep.equal(ids);
      expect((await f.store.getJob(ids[3]))?.classType).to.equal('Thread');
      expect(await f.db.llen(f.k.signal('manager')), 'one wake-up for them all').to.equal(1);
    });

    it('returns the same id for the same submission token and queues the job once', async function () {
      const f = await fixture();
      const [first] = await f.store.addJobs([newJob('same')], T0);
      const before = await f.dump();
      const again = await f.store.addJobs([newJob('same'), newJob('same')], T0 + 5);
      expect(again).to.deep.equal([first, first]);
      expect(await f.dump(), 'a replayed addJob changes nothing').to.deep.equal(before);

      const [other] = await f.store.addJobs([newJob('other')], T0);
      expect(other).to.not.equal(first);
      expect(await f.store.readIntake(10)).to.deep.equal([first, other]);
    });
  });

  describe('readIntake-2.lua', function () {
    it('gives the oldest entries with the fields the manager checks, and nulls for an entry that is no job', async function () {
      const f = await fixture();
      const ids = await f.add(2);
      await f.db.lpush(f.k.jobQueue, 'not-a-job-id');
      const intake = await f.store.readIntakeFields(10, ['file', 'baseDir', 'nothing']);
      expect(intake).to.deep.equal([
        { entry: ids[0], fields: ['/x/a.yaml', '/x', null] },
        { entry: ids[1], fields: ['/x/a.yaml', '/x', null] },
        { entry: 'not-a-job-id', fields: [null, null, null] },
      ]);
      expect(await f.store.readIntakeFields(1, ['file']), 'at most the number asked for').to.deep.equal([{ entry: ids[0], fields: ['/x/a.yaml'] }]);
      expect(await f.db.llen(f.k.jobQueue), 'reading takes nothing').to.equal(3);
    });
  });

  describe('route-N.lua', function () {
    it('moves checked entries to Job_Queue:local with their spec, poll period, timeout and retries, oldest first', async function () {
      const f = await fixture();
      const ids = await f.add(3);
      const intake = await f.store.readIntake(10);
      expect(intake, 'readIntake gives the oldest first').to.deep.equal(ids);
      const spec = specOf({ Order: [{ Run: 'true' }], Retries: 2 });
      const result = await f.store.route(intake.map((id) => accept(id, { spec, pollMs: 5000, timeoutMs: 60_000, retries: 2 })), T0);
      expect(result).to.deep.equal({ routed: 3, rejected: 0 });
      expect(await f.db.llen(f.k.jobQueue)).to.equal(0);
      expect(await f.waiting()).to.deep.equal(ids);
      expect(await f.raw(ids[0])).to.include({ state: 'queued', location: 'local', spec, pollMs: '5000', timeoutMs: '60000', retries: '2' });
      expect(await f.store.route([accept(ids[0])], T0), 'an entry no longer in Job_Queue is not routed again').to.deep.equal({ routed: 0, rejected: 0 });
    });

    it('rejects an entry with the reason while the others in the same call are routed', async function () {
      const f = await fixture();
      const [good, bad] = await f.add(2);
      const reason = specError({ Order: [{ Run: 'true' }], Colour: 'red' });
      expect(reason).to.match(/Colour/);
      expect(await f.store.route([accept(good), reject(bad, reason)], T0 + 1)).to.deep.equal({ routed: 1, rejected: 1 });
      expect(await f.store.getJob(bad)).to.include({ state: 'rejected', reason, endedAt: T0 + 1, location: null });
      expect(await f.raw(bad)).to.not.have.property('spec');
      expect(await f.waiting()).to.deep.equal([good]);
      expect(await f.db.llen(f.k.jobQueue)).to.equal(0);
      expect((await f.events()).filter((e) => e.state !== 'queued')).to.deep.equal([{ job: bad, state: 'rejected', reason }]);
    });

    it('gives an entry that is not a job id a rejected record of its own', async function () {
      const f = await fixture();
      const [done] = await f.running(1, 1);
      await f.finish([ended(done.id, 1, 'succeeded')], 1, T0); // job:<id>:runs now exists (a list)
      const [id] = await f.add(1);
      const junk = ['legacy-pickle', `${done.id}:runs`];
      await f.db.lpush(f.k.jobQueue, ...junk);
      const intake = await f.store.readIntake(10);
      expect(intake).to.deep.equal([id, ...junk]);
      // Even told to route them, the script cannot: there is no job to route.
      expect(await f.store.route(intake.map((entry) => accept(entry)), T0)).to.deep.equal({ routed: 1, rejected: 2 });
      const ownIds = [String(Number(id) + 1), String(Number(id) + 2)];
      const own = await f.store.getJobs(ownIds);
      expect(own.map((j) => [j?.id, j?.name, j?.state, j?.endedAt, j?.location])).to.deep.equal(junk.map((name, i) => [ownIds[i], name, 'rejected', T0, null]));
      for (const job of own) expect(job!.reason).to.match(/not a job id/);
      expect(await f.db.zrange(f.k.jobs, 0, -1)).to.deep.equal([done.id, id, ...ownIds]);
      expect(await f.db.exists(f.k.job('legacy-pickle'))).to.equal(0);
      expect(await f.store.runsOf(done.id), 'the key it named is untouched').to.have.length(1);
      expect(await f.db.llen(f.k.jobQueue)).to.equal(0);
      expect(await f.waiting()).to.deep.equal([id]);
    });

    it('skips entries no longer queued: cancelled after the manager read them, or a leftover entry', async function () {
      const f = await fixture();
      const [a, b, c] = await f.add(3);
      const intake = await f.store.readIntake(10);
      expect(await f.store.cancel([a, c], T0)).to.deep.equal(['cancelled', 'cancelled']);
      await f.db.lpush(f.k.jobQueue, c); // a leftover entry of a job that is no longer queued
      const cancelled = await f.raw(c);
      expect(await f.store.route(intake.map((id) => accept(id)), T0)).to.deep.equal({ routed: 1, rejected: 0 });
      expect(await f.state(a)).to.equal('cancelled');
      expect(await f.raw(c), 'the leftover entry changes nothing').to.deep.equal(cancelled);
      expect(await f.db.llen(f.k.jobQueue), 'the leftover entry is dropped').to.equal(0);
      expect(await f.waiting()).to.deep.equal([b]);
    });

    it('changes nothing when replayed', async function () {
      const f = await fixture();
      const [a, b] = await f.add(2);
      const decisions = [accept(a), reject(b, 'no')];
      await f.store.route(decisions, T0);
      const before = await f.dump();
      expect(await f.store.route(decisions, T0 + 1)).to.deep.equal({ routed: 0, rejected: 0 });
      expect(await f.dump()).to.deep.equal(before);
    });
  });

  describe('grant-N.lua', function () {
    it('never holds more slots than the limit, across several calls and budgets', async function () {
      const f = await fixture();
      const ids = await f.queue(5);
      expect(await f.grant(2, T0, 1), 'the budget caps one call').to.deep.equal({ granted: 1, nextDueMs: null });
      expect(await f.grant(2)).to.deep.equal({ granted: 1, nextDueMs: null });
      expect(await f.grant(2)).to.deep.equal({ granted: 0, nextDueMs: null });
      expect(await f.slots()).to.deep.equal(ids.slice(0, 2));
      expect(await f.take(), 'the starter taking payloads frees no slot').to.have.length(2);
      expect(await f.grant(2)).to.deep.equal({ granted: 0, nextDueMs: null });
      expect(await f.grant(3), 'a higher limit gives exactly the difference').to.deep.equal({ granted: 1, nextDueMs: null });
      expect(await f.slots()).to.deep.equal(ids.slice(0, 3));
      expect(await f.waiting()).to.deep.equal(ids.slice(3));
      for (const id of ids.slice(3)) expect(await f.state(id)).to.equal('queued');
    });

    it('grants oldest first, each with a new run number and the payload the starter parses', async function () {
      const f = await fixture();
      const ids = await f.queue(3);
      expect(await f.grant(3, T0 + 7)).to.deep.equal({ granted: 3, nextDueMs: null });
      const taken = await f.take();
      expect(taken.map((t) => t.id)).to.deep.equal(ids);
      expect(taken[0]).to.deep.equal({ id: ids[0], run: 1, attempt: 1, where: HERE, spec: specOf(DOC), raw: 'null' });
      expect(await f.store.getJob(ids[0])).to.include({ state: 'granted', run: 1, attempt: 1, grantedAt: T0 + 7 });
      expect(await f.raw(ids[0]), 'the location whose slot it holds').to.include({ slot: HERE, node: defaultNodeName(), timeoutMs: '' });
      expect((await f.events()).filter((e) => e.state === 'granted')).to.deep.equal(ids.map((id) => ({ job: id, state: 'granted', run: '1', host: HERE, class: 'Local' })));
    });

    it('puts the job definition in the payload only when a step takes the self.yaml input', async function () {
      const f = await fixture();
      const takesSelf = { Modules: { m: 'm.mjs' }, Order: [{ Function: 'send', Inputs: [{ yaml: 'self.yaml' }] }] };
      const mentionsSelf = { Name: 'self.yaml-copier', Order: [{ Run: 'cp self.yaml backup.yaml' }], Env: { SOURCE: 'self.yaml' } };
      const [a] = await f.queue(1, { doc: takesSelf });
      const [b] = await f.queue(1, { doc: mentionsSelf });
      await f.grant(2);
      const [first, second] = await f.take();
      expect(first.id).to.equal(a);
      expect(JSON.parse(first.raw)).to.deep.equal(takesSelf);
      expect(second.id).to.equal(b);
      expect(second.raw, 'a command or name that merely mentions self.yaml takes no input').to.equal('null');
      // relaunch builds the same payload
      expect(JSON.parse(((await f.store.relaunch(a, 1, T0)) as TakenJob).raw)).to.deep.equal(takesSelf);
      expect(((await f.store.relaunch(b, 1, T0)) as TakenJob).raw).to.equal('null');
    });

    it('moves due retries from Delayed to the front of their queue and reports when the next is due', async function () {
      const f = await fixture();
      const [r1, r2] = await f.queue(2, { retries: 1 });
      await f.grant(2);
      await f.take();
      await f.finish([ended(r1, 1, 'failed', { backoffMs: 1000 }), ended(r2, 1, 'failed', { backoffMs: 3000 })], 2, T0);
      const [fresh] = await f.queue(1);
      expect(await f.grant(1, T0 + 999)).to.deep.equal({ granted: 1, nextDueMs: 1 });
      expect((await f.take()).map((t) => t.id), 'nothing due yet: the fresh job goes').to.deep.equal([fresh]);
      const [later] = await f.queue(1);
      expect(await f.grant(1, T0 + 5000)).to.deep.equal({ granted: 0, nextDueMs: null });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.waiting(), 'retries first, the earliest due first').to.deep.equal([r1, r2, later]);
      expect(await f.store.getJob(r1)).to.include({ state: 'queued', retryAt: null });
    });
    it('grants nothing to a host marked down in HostState, and hands it no freed slot', async function () {
      const f = await fixture();
      const ids = await f.add(3);
      await f.store.route(ids.map((id) => ({ ...accept(id), location: 'host:h1' })), T0);
      const pools: GrantPool[] = [{ location: 'host:h1', limit: 1, queues: ['host:h1'] }];
      expect(await f.store.grant(pools, 100, T0)).to.deep.equal({ granted: 1, nextDueMs: null });
      await f.db.hset(f.k.hostState, 'h1', JSON.stringify({ state: 'down', since: T0, reason: 'unreachable' }));
      const [first] = await f.take();
      expect(await f.store.finishRuns([ended(first.id, 1, 'failed')], pools, T0 + 1), 'the freed slot is not handed on').to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.store.grant(pools, 100, T0 + 2)).to.deep.equal({ granted: 0, nextDueMs: null });
      expect(await f.db.scard(f.k.remoteJobs('h1'))).to.equal(0);
      await f.db.hset(f.k.hostState, 'h1', JSON.stringify({ state: 'up', since: T0 + 3, reason: null }));
      expect(await f.store.grant(pools, 100, T0 + 4)).to.deep.equal({ granted: 1, nextDueMs: null });
    });
  });

  describe('markRunning-N.lua', function () {
    it('marks the run running with its pid, start time and launcher, due one poll period later', async function () {
      const f = await fixture();
      const [id] = await f.queue(1, { pollMs: 5000 });
      await f.grant(1);
      const [job] = await f.take();
      expect(await f.start([job], T0 + 200, T0 + 100)).to.equal(T0 + 5200);
      expect(await f.store.getJob(id)).to.include({ state: 'running', pid: 4000 + Number(id), startedAt: T0 + 100, deadline: null, runlog: 'e1', run: 1 });
      expect(await f.db.zscore(f.k.runningQueue, id)).to.equal(String(T0 + 5200));
      expect((await f.events()).at(-1), 'its class and wait for the web page').to.deep.equal({ job: id, state: 'running', run: '1', class: 'Local', waited: '100' });
      expect(await f.slots(), 'the slot stays held').to.deep.equal([id]);
    });

    it('scores a run with its deadline when that comes before the next poll', async function () {
      const f = await fixture();
      const [short] = await f.queue(1, { pollMs: 5000, timeoutMs: 3000 });
      const [long] = await f.queue(1, { pollMs: 5000, timeoutMs: 60_000 });
      await f.grant(2);
      const jobs = await f.take();
      expect(await f.start(jobs, T0 + 200, T0 + 100), 'the earliest score given').to.equal(T0 + 3100);
      expect(await f.store.getJob(short)).to.include({ deadline: T0 + 3100 });
      expect(await f.db.zscore(f.k.runningQueue, short)).to.equal(String(T0 + 3100));
      expect(await f.store.getJob(long)).to.include({ deadline: T0 + 60_100 });
      expect(await f.db.zscore(f.k.runningQueue, long)).to.equal(String(T0 + 5200));
    });

    it('changes nothing on a replay or for a run that is not the current one', async function () {
      const f = await fixture();
      await f.queue(2);
      await f.grant(2);
      const [a, b] = await f.take();
      await f.start([a], T0);
      const before = await f.dump();
      expect(await f.start([a], T0 + 50), 'a replay').to.equal(null);
      expect(await f.start([{ ...b, run: 2 }, { ...b, run: 0 }], T0 + 50), 'not the current run').to.equal(null);
      expect(await f.dump()).to.deep.equal(before);
      expect(await f.state(b.id)).to.equal('granted');
    });
  });

  describe('finishRun-N.lua', function () {
    it('succeeded: records the run, frees the slot and hands it to the next queued job in the same step', async function () {
      const f = await fixture();
      const [a, b, c] = await f.queue(3);
      await f.grant(1);
      await f.start(await f.take(), T0);
      const steps = [{ label: 'true', state: 'succeeded', startedAt: T0, endedAt: T0 + 900, exitCode: 0 }];
      const result = await f.finish([ended(a, 1, 'succeeded', { result: { lines: 6 }, steps })], 1, T0 + 1000);
      expect(result).to.deep.equal({ recorded: 1, handedOff: 1 });

      const job = await f.store.getJob(a);
      expect(job).to.include({ state: 'succeeded', exitCode: 0, reason: 'exited 0', endedAt: T0 + 1000, startedAt: T0, pid: null, deadline: null });
      expect(job!.result).to.deep.equal({ lines: 6 });
      expect(job!.steps).to.deep.equal(steps);
      expect(await f.raw(a)).to.not.have.property('slot');
      expect(await f.store.runsOf(a)).to.deep.equal([{ run: 1, attempt: 1, outcome: 'succeeded', exitCode: '0', reason: 'exited 0', startedAt: T0, endedAt: T0 + 1000, location: 'local' }]);
      expect(await f.db.zscore(f.k.runningQueue, a)).to.equal(null);

      expect(await f.slots(), 'the slot went straight to the next job').to.deep.equal([b]);
      expect(await f.store.getJob(b)).to.include({ state: 'granted', run: 1, grantedAt: T0 + 1000 });
      expect((await f.take()).map((t) => t.id)).to.deep.equal([b]);
      expect(await f.waiting()).to.deep.equal([c]);
      expect((await f.events()).slice(-2)).to.deep.equal([
        { job: a, state: 'succeeded', run: '1', reason: 'exited 0', class: 'Local', took: '1000' },
        { job: b, state: 'granted', run: '1', host: HERE, class: 'Local' },
      ]);
    });

    it('records a run that ended before markRunning saw it start, with the start time it was given', async function () {
      const f = await fixture();
      const [id] = await f.queue(1);
      await f.grant(1);
      await f.take();
      expect(await f.finish([ended(id, 1, 'succeeded', { startedAt: T0 + 10 })], 1, T0 + 20)).to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.store.getJob(id)).to.include({ state: 'succeeded', startedAt: T0 + 10, endedAt: T0 + 20 });
      expect((await f.store.runsOf(id))[0]).to.include({ startedAt: T0 + 10, endedAt: T0 + 20 });
      expect((await f.events()).at(-1), 'its wait, which no running event said').to.deep.equal({ job: id, state: 'succeeded', run: '1', reason: 'exited 0', class: 'Local', took: '10', waited: '10' });
      expect(await f.slots()).to.deep.equal([]);
    });

    it('failed with retries left: queued again after backoff * 2^(attempt-1), granted once due, failed when none are left', async function () {
      const f = await fixture();
      const [{ id }] = await f.running(1, 1, { retries: 2 });
      await f.db.del(f.k.signal('manager'));

      expect(await f.finish([ended(id, 1, 'failed')], 1, T0 + 10)).to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.store.getJob(id)).to.include({ state: 'queued', attempt: 2, run: 1, retryAt: T0 + 1010, reason: 'exited 1', endedAt: null });
      expect(await f.db.zscore(f.k.delayed, id)).to.equal(String(T0 + 1010));
      expect(await f.slots()).to.deep.equal([]);
      expect(await f.db.llen(f.k.signal('manager')), 'the manager learns of the retry').to.equal(1);
      expect((await f.events()).at(-1)).to.deep.include({ job: id, state: 'queued', run: '1', reason: 'exited 1', class: 'Local' });

      expect(await f.grant(1, T0 + 1009)).to.deep.equal({ granted: 0, nextDueMs: 1 });
      expect(await f.grant(1, T0 + 1010)).to.deep.equal({ granted: 1, nextDueMs: null });
      const [second] = await f.take();
      expect(second).to.include({ id: id, run: 2, attempt: 2 });
      expect(await f.store.getJob(id)).to.include({ state: 'granted', retryAt: null });

      await f.finish([ended(id, 2, 'failed')], 1, T0 + 2000);
      expect(await f.db.zscore(f.k.delayed, id), 'the backoff doubles').to.equal(String(T0 + 4000));
      await f.grant(1, T0 + 4000);
      const [third] = await f.take();
      expect(third).to.include({ run: 3, attempt: 3 });

      await f.finish([ended(id, 3, 'failed', { reason: 'exited 3', exitCode: 3 })], 1, T0 + 5000);
      expect(await f.store.getJob(id)).to.include({ state: 'failed', attempt: 3, exitCode: 3, reason: 'exited 3', endedAt: T0 + 5000 });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.slots()).to.deep.equal([]);
      expect((await f.store.runsOf(id)).map((r) => [r.run, r.attempt, r.outcome])).to.deep.equal([[1, 1, 'failed'], [2, 2, 'failed'], [3, 3, 'failed']]);
    });

    it('caps the retry backoff at 5 minutes', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { retries: 1 });
      await f.finish([ended(job.id, 1, 'failed', { backoffMs: 1_000_000 })], 1, T0);
      expect(await f.db.zscore(f.k.delayed, job.id)).to.equal(String(T0 + 300_000));
    });

    it('failed with no retries left: failed, its slot freed', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1);
      expect(await f.finish([ended(job.id, 1, 'failed', { exitCode: 2, reason: 'step 1 exited with code 2' })], 1, T0 + 30)).to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.store.getJob(job.id)).to.include({ state: 'failed', attempt: 1, exitCode: 2, reason: 'step 1 exited with code 2', endedAt: T0 + 30 });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.slots()).to.deep.equal([]);
      expect((await f.events()).at(-1)).to.include({ job: job.id, state: 'failed' });
    });

    it('interrupted: queued again at once without using a retry', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1); // no retries at all
      await f.finish([ended(job.id, 1, 'interrupted', { reason: 'its thread died' })], 1, T0 + 30);
      expect(await f.store.getJob(job.id)).to.include({ state: 'queued', attempt: 1, retryAt: T0 + 30 });
      expect(await f.db.zscore(f.k.delayed, job.id)).to.equal(String(T0 + 30));
      expect(await f.slots()).to.deep.equal([]);
      expect(await f.grant(1, T0 + 30)).to.deep.equal({ granted: 1, nextDueMs: null });
      expect((await f.take())[0]).to.deep.include({ id: job.id, run: 2, attempt: 1 });
    });

    it('cancelled: cancelled, its slot freed and handed on', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { retries: 3 });
      const [next] = await f.queue(1);
      expect(await f.finish([ended(job.id, 1, 'cancelled', { exitCode: null, reason: 'cancelled' })], 1, T0 + 5)).to.deep.equal({ recorded: 1, handedOff: 1 });
      expect(await f.store.getJob(job.id)).to.include({ state: 'cancelled', exitCode: null, endedAt: T0 + 5 });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.slots()).to.deep.equal([next]);
    });

    it('changes nothing on a replay of the same finish, and frees no second slot', async function () {
      const f = await fixture();
      const [a, b] = await f.queue(3);
      await f.grant(1);
      await f.take();
      await f.finish([ended(a, 1, 'succeeded')], 1, T0 + 1);
      expect(await f.slots()).to.deep.equal([b]);
      const before = await f.dump();
      expect(await f.finish([ended(a, 1, 'succeeded')], 1, T0 + 2)).to.deep.equal({ recorded: 0, handedOff: 0 });
      expect(await f.finish([ended(a, 1, 'failed')], 1, T0 + 2)).to.deep.equal({ recorded: 0, handedOff: 0 });
      expect(await f.dump(), 'the third job still waits for the one slot').to.deep.equal(before);
    });

    it('changes nothing for a retry replayed or a finish of an older run', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { retries: 1 });
      await f.finish([ended(job.id, 1, 'failed', { backoffMs: 0 })], 1, T0 + 1);
      const retrying = await f.dump();
      expect(await f.finish([ended(job.id, 1, 'failed', { backoffMs: 0 })], 1, T0 + 2)).to.deep.equal({ recorded: 0, handedOff: 0 });
      expect(await f.dump(), 'no second retry, no attempt 3').to.deep.equal(retrying);

      await f.grant(1, T0 + 2);
      await f.start(await f.take(), T0 + 3);
      const before = await f.dump();
      expect(await f.finish([ended(job.id, 1, 'succeeded'), ended(job.id, 1, 'interrupted')], 1, T0 + 4)).to.deep.equal({ recorded: 0, handedOff: 0 });
      expect(await f.dump()).to.deep.equal(before);
      expect(await f.store.getJob(job.id)).to.include({ state: 'running', run: 2 });
    });
  });

  describe('cancel-N.lua', function () {
    it('queued in Job_Queue: cancelled at once, with an event', async function () {
      const f = await fixture();
      const [a, b] = await f.add(2);
      expect(await f.store.cancel([a], T0 + 3)).to.deep.equal(['cancelled']);
      expect(await f.store.getJob(a)).to.include({ state: 'cancelled', reason: 'cancelled before it started', endedAt: T0 + 3 });
      expect(await f.db.lrange(f.k.jobQueue, 0, -1)).to.deep.equal([b]);
      expect((await f.events()).at(-1)).to.deep.equal({ job: a, state: 'cancelled' });
    });

    it('queued in its location queue: cancelled, and grant passes over it', async function () {
      const f = await fixture();
      const [a, b] = await f.queue(2);
      expect(await f.store.cancel([a], T0)).to.deep.equal(['cancelled']);
      expect(await f.waiting()).to.deep.equal([b]);
      expect(await f.grant(1)).to.deep.equal({ granted: 1, nextDueMs: null });
      expect(await f.slots()).to.deep.equal([b]);
      expect(await f.state(a)).to.equal('cancelled');
    });

    it('waiting in Delayed for a retry: cancelled, and never granted again', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { retries: 1 });
      await f.finish([ended(job.id, 1, 'failed')], 1, T0);
      expect(await f.store.cancel([job.id], T0 + 1)).to.deep.equal(['cancelled']);
      expect(await f.store.getJob(job.id)).to.include({ state: 'cancelled', retryAt: null });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.grant(1, T0 + 60_000)).to.deep.equal({ granted: 0, nextDueMs: null });
      expect(await f.waiting()).to.deep.equal([]);
    });

    it('granted, still in Granted_Queue: cancelled, its payload removed and its slot freed at once', async function () {
      const f = await fixture();
      const [a, b, c] = await f.queue(3);
      await f.grant(2);
      await f.db.del(f.k.signal('manager'));
      expect(await f.store.cancel([a], T0 + 1)).to.deep.equal(['cancelled']);
      expect(await f.store.getJob(a)).to.include({ state: 'cancelled', endedAt: T0 + 1 });
      expect(await f.raw(a)).to.not.have.property('slot');
      expect(await f.slots()).to.deep.equal([b]);
      expect(await f.db.llen(f.k.signal('manager')), 'the manager is told a slot is free').to.equal(1);
      expect(await f.grant(2)).to.deep.equal({ granted: 1, nextDueMs: null });
      expect((await f.take()).map((t) => t.id), 'the starter never sees the cancelled job').to.deep.equal([b, c]);
    });

    it('granted, being launched: cancelRequested, slot held, and the run ends as cancelled even with retries left', async function () {
      const f = await fixture();
      await f.queue(1, { retries: 2 });
      await f.grant(1);
      const [job] = await f.take(); // the starter has it and is launching it
      await f.db.del(f.k.signal('fetcher'));
      expect(await f.store.cancel([job.id], T0 + 5)).to.deep.equal(['cancelling']);
      expect(await f.store.getJob(job.id)).to.include({ state: 'granted', cancelRequested: true });
      expect(await f.slots()).to.deep.equal([job.id]);
      expect(await f.db.llen(f.k.nodeSignal('fetcher')), 'the fetcher of the job\'s node is woken').to.equal(1);

      expect(await f.start([job], T0 + 50), 'once running it is due at once').to.equal(T0 + 50);
      expect(await f.db.zscore(f.k.runningQueue, job.id)).to.equal(String(T0 + 50));
      expect(await f.finish([ended(job.id, 1, 'failed', { reason: 'killed by SIGTERM' })], 1, T0 + 60)).to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.store.getJob(job.id)).to.include({ state: 'cancelled', attempt: 1 });
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
      expect(await f.slots()).to.deep.equal([]);
    });

    it('running: cancelRequested and due in Running_Queue now; a run that still succeeds stays succeeded', async function () {
      const f = await fixture();
      const [a, b] = await f.running(2, 2, { retries: 1 });
      expect(await f.store.cancel([a.id, b.id], T0 + 100)).to.deep.equal(['cancelling', 'cancelling']);
      expect(await f.db.zscore(f.k.runningQueue, a.id)).to.equal(String(T0 + 100));
      expect(await f.raw(a.id)).to.include({ state: 'running', cancelRequested: String(T0 + 100) });
      expect(await f.store.cancel([a.id], T0 + 200), 'asking twice').to.deep.equal(['cancelling']);
      expect(await f.raw(a.id)).to.include({ cancelRequested: String(T0 + 100) });
      expect(await f.slots()).to.deep.equal([a.id, b.id]);

      await f.finish([ended(a.id, 1, 'interrupted'), ended(b.id, 1, 'succeeded')], 2, T0 + 300);
      expect(await f.state(a.id)).to.equal('cancelled');
      expect(await f.state(b.id)).to.equal('succeeded');
      expect(await f.slots()).to.deep.equal([]);
      expect(await f.db.zcard(f.k.delayed)).to.equal(0);
    });

    it('already ended or unknown: reports the state and changes nothing', async function () {
      const f = await fixture();
      const [done] = await f.running(1, 1);
      await f.finish([ended(done.id, 1, 'succeeded')], 1, T0);
      const [rejected, cancelled] = await f.add(2);
      await f.store.route([reject(rejected, 'no')], T0);
      await f.store.cancel([cancelled], T0);
      const before = await f.dump();
      expect(await f.store.cancel([done.id, rejected, cancelled, '999'], T0 + 1)).to.deep.equal(['succeeded', 'rejected', 'cancelled', 'unknown']);
      expect(await f.dump()).to.deep.equal(before);
    });
  });

  describe('retry-N.lua', function () {
    it('failed: queued again at the end of its queue with attempt 1, its outcome cleared, its runs kept; granted with the next run number', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { retries: 1 });
      await f.finish([ended(job.id, 1, 'failed', { steps: [{ label: 'x', state: 'failed' }] })], 1, T0);
      await f.grant(1, T0 + 60_000);
      const [again] = await f.take();
      await f.start([again], T0 + 60_000);
      await f.finish([ended(job.id, 2, 'failed')], 1, T0 + 61_000);
      const [waiting] = await f.queue(1);
      expect(await f.store.getJob(job.id)).to.include({ state: 'failed', attempt: 2 });
      await f.db.del(f.k.signal('manager'));

      expect(await f.store.retry([job.id], T0 + 70_000)).to.deep.equal(['queued']);
      const record = await f.store.getJob(job.id);
      expect(record).to.include({ state: 'queued', attempt: 1, run: 2, queuedAt: T0 + 70_000, retriedAt: T0 + 70_000, manualRetries: 1, reason: null, exitCode: null, endedAt: null, startedAt: null });
      expect(record!.steps).to.deep.equal([]);
      expect(await f.waiting(), 'behind the job already waiting').to.deep.equal([waiting, job.id]);
      expect((await f.store.runsOf(job.id)).map((r) => r.run)).to.deep.equal([1, 2]);
      expect((await f.events()).at(-1)).to.deep.equal({ job: job.id, state: 'queued', reason: 'retried by hand, was failed' });
      expect(await f.db.llen(f.k.signal('manager')), 'the manager is told').to.equal(1);

      await f.grant(2, T0 + 70_001);
      const taken = await f.take();
      expect(taken.map((t) => [t.id, t.run, t.attempt])).to.deep.equal([[waiting, 1, 1], [job.id, 3, 1]]);
    });

    it('cancelled before it was routed: back on Job_Queue for the manager to check again', async function () {
      const f = await fixture();
      const [a] = await f.add(1);
      await f.store.cancel([a], T0);
      expect(await f.store.retry([a], T0 + 1)).to.deep.equal(['queued']);
      expect(await f.store.getJob(a)).to.include({ state: 'queued', cancelRequested: false });
      expect(await f.db.lrange(f.k.jobQueue, 0, -1)).to.deep.equal([a]);
      expect(await f.store.route([accept(a)], T0 + 2)).to.deep.equal({ routed: 1, rejected: 0 });
      expect(await f.grant(1, T0 + 3)).to.deep.equal({ granted: 1, nextDueMs: null });
    });

    it('cancelled while running: runs again, and the old cancel request does not cancel the new run', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1);
      await f.store.cancel([job.id], T0 + 1);
      await f.finish([ended(job.id, 1, 'failed', { reason: 'killed by SIGTERM' })], 1, T0 + 2);
      expect(await f.state(job.id)).to.equal('cancelled');
      expect(await f.store.retry([job.id], T0 + 3)).to.deep.equal(['queued']);
      await f.grant(1, T0 + 4);
      const [again] = await f.take();
      await f.start([again], T0 + 5);
      expect(await f.db.zscore(f.k.runningQueue, job.id), 'due one poll period later, not at once').to.equal(String(T0 + 5 + POLL_MS));
      await f.finish([ended(job.id, again.run, 'succeeded')], 1, T0 + 6);
      expect(await f.store.getJob(job.id)).to.include({ state: 'succeeded', run: 2 });
    });

    it('any other state, or unknown: reports the state and changes nothing', async function () {
      const f = await fixture();
      const [done] = await f.running(1, 1);
      await f.finish([ended(done.id, 1, 'succeeded')], 1, T0);
      const [rejected, queued] = await f.add(2);
      await f.store.route([reject(rejected, 'no')], T0);
      const [running] = await f.running(1, 1);
      const before = await f.dump();
      expect(await f.store.retry([done.id, rejected, queued, running.id, '999'], T0 + 1)).to.deep.equal(['succeeded', 'rejected', 'queued', 'running', 'unknown']);
      expect(await f.dump()).to.deep.equal(before);
    });
  });

  describe('relaunch-3.lua', function () {
    it('gives a granted job whose run never launched a new run and its payload, once', async function () {
      const f = await fixture();
      await f.queue(1);
      await f.grant(1);
      const [lost] = await f.take(); // taken by a starter that died before launching it
      const again = await f.store.relaunch(lost.id, 1, T0 + 5);
      expect(again).to.deep.equal({ id: lost.id, run: 2, attempt: 1, where: HERE, spec: specOf(DOC), raw: 'null' });
      expect(await f.store.getJob(lost.id)).to.include({ state: 'granted', run: 2 });
      expect(await f.slots()).to.deep.equal([lost.id]);
      expect((await f.events()).at(-1)).to.deep.equal({ job: lost.id, state: 'granted', run: '2', reason: 'relaunched: run 1 never started' });

      const before = await f.dump();
      expect(await f.store.relaunch(lost.id, 1, T0 + 6), 'a replay').to.equal(null);
      expect(await f.start([lost], T0 + 7), 'the lost run can no longer start').to.equal(null);
      expect(await f.dump()).to.deep.equal(before);
      expect(await f.start([again as TakenJob], T0 + 7)).to.equal(T0 + 7 + POLL_MS);
    });

    it('does nothing to a job that is not granted at that run', async function () {
      const f = await fixture();
      const [running] = await f.running(1, 1);
      const [done] = await f.running(1, 2);
      await f.finish([ended(done.id, 1, 'succeeded')], 2, T0);
      const [queued] = await f.queue(1);
      const before = await f.dump();
      for (const [id, run] of [[queued, 0], [queued, 1], [running.id, 1], [done.id, 1], ['999', 1]] as const) {
        expect(await f.store.relaunch(id, run, T0 + 1), `${id} run ${run}`).to.equal(null);
      }
      expect(await f.dump()).to.deep.equal(before);
    });

    it("returns 'cancelled' when cancel was requested, leaving the run for the starter to end", async function () {
      const f = await fixture();
      await f.queue(1, { retries: 1 });
      await f.grant(1);
      const [lost] = await f.take();
      expect(await f.store.cancel([lost.id], T0)).to.deep.equal(['cancelling']);
      const before = await f.dump();
      expect(await f.store.relaunch(lost.id, 1, T0 + 1)).to.equal('cancelled');
      expect(await f.dump()).to.deep.equal(before);
      await f.finish([ended(lost.id, 1, 'cancelled', { reason: 'cancelled before it started' })], 1, T0 + 2);
      expect(await f.state(lost.id)).to.equal('cancelled');
      expect(await f.slots()).to.deep.equal([]);
    });
  });

  describe('noteDownloads-1.lua', function () {
    const missing = [{ file: 'missing.txt', reason: 'No such file' }];

    it('notes the failed Downloads of the current run on its job, for show; a fetch where all arrived clears the note', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1);
      expect(await f.store.noteDownloads(job.id, 1, missing)).to.equal(true);
      await f.finish([ended(job.id, 1, 'failed')], 1, T0 + 1000);
      expect((await f.store.getJob(job.id))!.downloads, 'kept past the run\'s end').to.deep.equal({ run: 1, failed: missing });
      const [other] = await f.running(1, 1);
      await f.store.noteDownloads(other.id, 1, missing);
      expect(await f.store.noteDownloads(other.id, 1, [])).to.equal(true);
      expect((await f.store.getJob(other.id))!.downloads).to.equal(null);
    });

    it('changes nothing for a run that is not the current one, or a job that has ended', async function () {
      const f = await fixture();
      const [a, b] = await f.running(2, 2);
      await f.finish([ended(b.id, 1, 'succeeded')], 2, T0 + 1000);
      const before = await f.dump();
      expect(await f.store.noteDownloads(a.id, 2, missing), 'not its run').to.equal(false);
      expect(await f.store.noteDownloads(b.id, 1, missing), 'ended').to.equal(false);
      expect(await f.store.noteDownloads('999', 1, missing), 'no such job').to.equal(false);
      expect(await f.dump()).to.deep.equal(before);
    });
  });

  describe('leaseLaunch-N.lua', function () {
    /** `count` jobs granted a slot of host h1, taken by the starter. */
    async function grantedOnH1(f: Fixture, count: number): Promise<TakenJob[]> {
      const ids = await f.add(count);
      await f.store.route(ids.map((id) => ({ ...accept(id), location: 'host:h1' })), T0);
      await f.store.grant([{ location: 'host:h1', limit: count, queues: ['host:h1'] }], 100, T0);
      return f.take();
    }

    it('records the launch lease of the host and returns the runs still current there', async function () {
      const f = await fixture();
      const [a, b, c] = await grantedOnH1(f, 3);
      await f.store.finishRuns([ended(b.id, 1, 'interrupted', { reason: 'host h1 unreachable for 9s' })], [], T0 + 1);
      const current = await f.store.leaseLaunch('h1', [a, b, c, { id: '99', run: 1 }].map((j) => ({ id: j.id, run: j.run })), T0 + 2);
      expect([...current!].sort()).to.deep.equal([a.id, c.id]);
      expect(await f.store.launchLeases()).to.deep.equal(new Map([['h1', T0 + 2]]));
      expect(await f.store.leaseLaunch('h2', [{ id: a.id, run: 1 }], T0 + 3), 'a run of another host is not current there').to.deep.equal(new Set());
      expect(await f.store.leaseLaunch('h1', [{ id: a.id, run: 2 }], T0 + 4), 'nor another run').to.deep.equal(new Set());
    });

    it('refuses any launch to a host marked down, and records no lease', async function () {
      const f = await fixture();
      const [a] = await grantedOnH1(f, 1);
      await f.db.hset(f.k.hostState, 'h1', JSON.stringify({ state: 'down', since: T0, reason: 'unreachable' }));
      const before = await f.dump();
      expect(await f.store.leaseLaunch('h1', [{ id: a.id, run: a.run }], T0 + 5)).to.equal(null);
      expect(await f.dump()).to.deep.equal(before);
      await f.db.hset(f.k.hostState, 'h1', JSON.stringify({ state: 'up', since: T0 + 6, reason: null }));
      expect(await f.store.leaseLaunch('h1', [{ id: a.id, run: a.run }], T0 + 7)).to.deep.equal(new Set([a.id]));
    });
  });

  describe('fenceRun-1.lua', function () {
    it('marks a run given up on as fenced, keeping the outcome it was given up with; twice changes nothing', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1);
      await f.finish([ended(job.id, 1, 'interrupted', { exitCode: null, reason: 'host h1 unreachable for 9s' })], 1, T0 + 10);
      expect(await f.store.fenceRun(job.id, 1, '; stopped by its lease', T0 + 5, T0 + 20)).to.equal(true);
      const expected = { run: 1, outcome: 'fenced', gaveUpAs: 'interrupted', reason: 'host h1 unreachable for 9s; stopped by its lease', stoppedAt: T0 + 5, fencedAt: T0 + 20, endedAt: T0 + 10 };
      expect((await f.store.runsOf(job.id))[0]).to.deep.include(expected);
      const before = await f.dump();
      expect(await f.store.fenceRun(job.id, 1, '; stopped by its lease', T0 + 5, T0 + 30)).to.equal(true);
      expect(await f.dump()).to.deep.equal(before);
    });

    it('fences only runs JobManager ended (no exit code), and says when there is nothing to fence', async function () {
      const f = await fixture();
      const [ok, bad, gone] = await f.running(3, 3);
      await f.finish([ended(ok.id, 1, 'succeeded'), ended(bad.id, 1, 'failed'), ended(gone.id, 1, 'failed', { exitCode: null, reason: 'host h1 unreachable for 9s' })], 3, T0 + 10);
      const before = await f.dump();
      expect(await f.store.fenceRun(ok.id, 1, '; x', null, T0 + 20), 'it succeeded').to.equal(false);
      expect(await f.store.fenceRun(bad.id, 1, '; x', null, T0 + 20), 'it exited 1').to.equal(false);
      expect(await f.store.fenceRun(gone.id, 2, '; x', null, T0 + 20), 'no such run').to.equal(false);
      expect(await f.dump()).to.deep.equal(before);
      expect(await f.store.fenceRun(gone.id, 1, '; found running and killed', null, T0 + 20)).to.equal(true);
      const entry = (await f.store.runsOf(gone.id))[0];
      expect(entry).to.deep.include({ outcome: 'fenced', gaveUpAs: 'failed', reason: 'host h1 unreachable for 9s; found running and killed' });
      expect(entry).to.not.have.property('stoppedAt');
    });
  });

  describe('enforceLimits-N.lua', function () {
    const GRACE = 5000;

    it('nothing yet: the next look is one poll period on, or the deadline if that comes first', async function () {
      const f = await fixture();
      const [short] = await f.running(1, 2, { timeoutMs: 3000 });
      const [long] = await f.running(1, 2);
      const verdicts = await f.store.enforceLimits([short, long], T0 + 1000, GRACE);
      expect(verdicts).to.deep.equal([
        { id: short.id, run: 1, signal: null, reason: null, nextLookAt: T0 + 3000 },
        { id: long.id, run: 1, signal: null, reason: null, nextLookAt: T0 + 1000 + POLL_MS },
      ]);
      expect(await f.db.zscore(f.k.runningQueue, short.id)).to.equal(String(T0 + 3000));
      expect(await f.db.zscore(f.k.runningQueue, long.id)).to.equal(String(T0 + 1000 + POLL_MS));
      expect(await f.raw(short.id)).to.not.have.any.keys('killAt', 'timedOut');
    });

    it('past its deadline: SIGTERM as timed out (recorded), then SIGKILL once the grace is over, and again after each grace', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { timeoutMs: 3000 });
      expect(await f.store.enforceLimits([job], T0 + 3000, GRACE)).to.deep.equal([{ id: job.id, run: 1, signal: 'SIGTERM', reason: 'timed out', nextLookAt: T0 + 3000 + GRACE }]);
      expect(await f.raw(job.id)).to.include({ timedOut: '1', killAt: String(T0 + 3000 + GRACE) });
      expect(await f.db.zscore(f.k.runningQueue, job.id)).to.equal(String(T0 + 3000 + GRACE));

      expect(await f.store.enforceLimits([job], T0 + 4000, GRACE), 'within the grace: no second TERM').to.deep.equal([{ id: job.id, run: 1, signal: null, reason: null, nextLookAt: T0 + 3000 + GRACE }]);
      expect(await f.store.enforceLimits([job], T0 + 3000 + GRACE, GRACE)).to.deep.equal([{ id: job.id, run: 1, signal: 'SIGKILL', reason: `still running ${GRACE}ms after SIGTERM`, nextLookAt: T0 + 3000 + 2 * GRACE }]);
      expect(await f.raw(job.id)).to.include({ killAt: String(T0 + 3000 + 2 * GRACE) });
      expect(await f.db.zscore(f.k.runningQueue, job.id)).to.equal(String(T0 + 3000 + 2 * GRACE));

      await f.finish([ended(job.id, 1, 'failed', { reason: 'killed by SIGKILL' })], 1, T0 + 3000 + 2 * GRACE);
      expect(await f.raw(job.id), 'the end clears them').to.not.have.any.keys('killAt', 'timedOut');
    });

    it('cancel requested: SIGTERM as cancelled, not recorded as timed out', async function () {
      const f = await fixture();
      const [job] = await f.running(1, 1, { timeoutMs: 60_000 });
      await f.store.cancel([job.id], T0 + 100);
      expect(await f.store.enforceLimits([job], T0 + 200, GRACE)).to.deep.equal([{ id: job.id, run: 1, signal: 'SIGTERM', reason: 'cancelled', nextLookAt: T0 + 200 + GRACE }]);
      expect(await f.raw(job.id)).to.include({ killAt: String(T0 + 200 + GRACE) }).and.not.have.property('timedOut');
    });

    it('ignores a job that is not running at that run, and changes nothing', async function () {
      const f = await fixture();
      const [done] = await f.running(1, 3, { timeoutMs: 1 });
      await f.finish([ended(done.id, 1, 'succeeded')], 3, T0);
      const [granted] = await f.queue(1, { timeoutMs: 1 });
      await f.grant(3);
      await f.take();
      const [running] = await f.running(1, 3, { timeoutMs: 1 });
      const before = await f.dump();
      const polled = [{ id: done.id, run: 1 }, { id: granted, run: 1 }, { id: running.id, run: 2 }, { id: running.id, run: 0 }, { id: '999', run: 1 }];
      expect(await f.store.enforceLimits(polled, T0 + 60_000, GRACE), 'no verdicts').to.deep.equal([]);
      expect(await f.dump()).to.deep.equal(before);
    });

    it('lookAgain moves the next look of jobs still in Running_Queue, and puts none back', async function () {
      const f = await fixture();
      const [a, b] = await f.running(2, 2);
      await f.finish([ended(b.id, 1, 'succeeded')], 2, T0);
      await f.store.lookAgain([{ id: a.id, at: T0 + 7 }, { id: b.id, at: T0 + 7 }]);
      expect(await f.db.zrange(f.k.runningQueue, 0, -1, 'WITHSCORES')).to.deep.equal([a.id, String(T0 + 7)]);
    });

    it('dropFromRunning drops leftover Running_Queue entries of jobs that are not running, and only those', async function () {
      const f = await fixture();
      const [running, done] = await f.running(2, 2);
      await f.finish([ended(done.id, 1, 'succeeded')], 2, T0);
      await f.db.zadd(f.k.runningQueue, T0, done.id, T0, '999');
      expect(await f.store.dropFromRunning([done.id, '999', running.id])).to.equal(2);
      expect(await f.db.zrange(f.k.runningQueue, 0, -1)).to.deep.equal([running.id]);
    });
  });

  describe('explainWait-2.lua', function () {
    it('tells the jobs still queued for a location why they wait, and leaves a granted one as it is', async function () {
      const f = await fixture();
      const [first, second] = await f.queue(2);
      await f.grant(1);
      const why = 'waiting for an EC2 instance: RunInstances failed 1 time (InsufficientInstanceCapacity)';
      expect(await f.store.explainWait('local', why)).to.equal(1);
      expect(await f.store.getJob(second)).to.include({ state: 'queued', reason: why });
      expect(await f.store.getJob(first)).to.include({ state: 'granted', reason: null });
    });
  });

  describe('keys (keys.ts and lua/includes/keys.lua)', function () {
    it('builds in Lua the same key names as keys.ts', async function () {
      const f = await fixture();
      const keys = new Keys('prod-1', 'ws-1');
      const ids = ['1', '42', '7:runs', 'legacy-pickle'];
      const locations = ['local', 'local:ws-1', 'host:lab1', 'host:ec2-i-0abc', 'any', 'ec2:ami-1:c7i.large'];
      const lua = withIncludes(`-- @include keys
        local out = {}
        for i = 1, #ARGV do
          local v = ARGV[i]
          out[#out + 1] = jobKey(KEYS[1], v)
          out[#out + 1] = jobRunsKey(KEYS[1], v)
          out[#out + 1] = locationQueueKey(KEYS[1], v)
          out[#out + 1] = slotSetKey(KEYS[1], v)
          out[#out + 1] = sweepKey(KEYS[1], v)
          out[#out + 1] = namedKey(KEYS[1], v)
        end
        return out`);
      const names = [...ids, ...locations];
      const fromLua = await f.db.eval(lua, 1, keys.prefix, ...names);
      expect(fromLua).to.deep.equal(names.flatMap((v) => [keys.job(v), keys.jobRuns(v), keys.locationQueue(v), keys.slotSet(v), keys.sweep(v), keys.named(v)]));
    });

    it('leaves the building of key names to includes/keys.lua: no script makes one itself', function () {
      const makesKey = /\bprefix\s*\.\.|\.\.\s*'(job:|Job_Queue|LocalJobs|RemoteJobs|Slots:|HostState|NextId|Jobs|Events|Signal)/;
      const found = readdirSync(LUA_DIR, { recursive: true, encoding: 'utf8' })
        .filter((file) => file.endsWith('.lua') && file !== join('includes', 'keys.lua'))
        .flatMap((file) => readFileSync(join(LUA_DIR, file), 'utf8').split('\n').map((line, i) => `${file}:${i + 1}: ${line.trim()}`))
        .filter((line) => makesKey.test(line) && !/^\S+: --/.test(line));
      expect(found).to.deep.equal([]);
    });

    it('frees the slot of a record that names its slot set by key (an older layout), never touching the key named', async function () {
      const f = await fixture();
      const [a, b, c, next] = await f.queue(4);
      await f.grant(3);
      await f.take();
      // Older records held the slot set's key name in `slot`; a forged one may name any key.
      await f.db.hset(f.k.job(a), 'slot', f.k.localJobs);
      await f.db.hset(f.k.job(b), 'slot', f.k.jobs);
      await f.db.hset(f.k.job(c), 'slot', f.k.localJobs);
      const jobs = await f.db.zrange(f.k.jobs, 0, -1);
      expect(await f.finish([ended(a, 1, 'succeeded'), ended(b, 1, 'failed')], 3, T0 + 1)).to.deep.equal({ recorded: 2, handedOff: 1 });
      expect(await f.db.zrange(f.k.jobs, 0, -1), 'the key a record named').to.deep.equal(jobs);
      expect(await f.slots()).to.deep.equal([c, next]);
      await f.db.hset(f.k.job(next), 'slot', f.k.localJobs); // granted, still in Granted_Queue
      expect(await f.store.cancel([next], T0 + 2)).to.deep.equal(['cancelled']);
      expect(await f.finish([ended(c, 1, 'succeeded')], 3, T0 + 3)).to.deep.equal({ recorded: 1, handedOff: 0 });
      expect(await f.slots()).to.deep.equal([]);
    });
  });

  describe('opening', function () {
    it("waits, as an actor, for a Redis that is restarting; fails at once as a command", async function () {
      const aof = await RedisServer.start({ appendOnly: true });
      try {
        await aof.kill9();
        const asCommand = await Store.open(aof.url, 'opening', 'cli').then(() => 'opened', (err: Error) => err.name);
        expect(asCommand).to.equal('RedisUnavailableError');
        const asActor = Store.open(aof.url, 'opening', 'actor');
        await aof.restart();
        const store = await asActor;
        try {
          await store.signal('manager');
          expect(await store.redis.llen(store.keys.signal('manager'))).to.equal(1);
        } finally {
          await store.close();
        }
      } finally {
        await aof.stop();
      }
    });
  });

  describe('blocking waits', function () {
    /** A logger that keeps what it is told. */
    function recorder(): Logger & { lines: string[] } {
      const lines: string[] = [];
      const keep = (level: string) => (message: string) => lines.push(`${level} ${message}`);
      return { lines, debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
    }

    it('says once, with the reason, that Redis refuses a wait, and says when it answers again', async function () {
      const f = await fixture();
      const log = recorder();
      const blocking = f.store.blocking(log);
      const stop = new StopSignal();
      try {
        await f.db.set(f.k.signal('fetcher'), 'not a list');
        for (let i = 0; i < 3; i++) expect(await blocking.waitForSignal('fetcher', 10, stop), 'no wake-up').to.equal(false);
        expect(log.lines).to.have.length(1);
        expect(log.lines[0]).to.match(/^error Redis refused a blocking wait on \S+Signal:fetcher:\S+ \S+Signal:fetcher: WRONGTYPE/);
        await f.db.del(f.k.signal('fetcher'));
        await f.store.signal('fetcher');
        expect(await blocking.waitForSignal('fetcher', 10, stop)).to.equal(true);
        expect(log.lines.slice(1)).to.deep.equal([`info Redis answers the blocking wait on ${f.k.nodeSignal('fetcher')} ${f.k.signal('fetcher')} again`]);
      } finally {
        stop.stop();
        blocking.close();
      }
    });

    it("comes back from the manager's wait with the jobs it woke for, and leaves a later job's wake-up", async function () {
      const f = await fixture();
      const blocking = f.store.blocking(recorder());
      const stop = new StopSignal();
      try {
        const [a] = await f.store.addJobs([newJob('wa')], T0);
        const woken = await blocking.waitForIntake(5000, stop, 10, ['file', 'baseDir']);
        expect(woken, 'the job read with the wake-up, with its fields').to.deep.equal([{ entry: a, fields: ['/x/a.yaml', '/x'] }]);
        expect(await f.db.llen(f.k.signal('manager')), 'its token taken').to.equal(0);
        // Queued after the wait: its token is still there, so the next wait ends at once.
        const [b] = await f.store.addJobs([newJob('wb')], T0);
        expect(await f.db.llen(f.k.signal('manager'))).to.equal(1);
        const next = await blocking.waitForIntake(5000, stop, 10, ['file']);
        expect(next.map((e) => e.entry), 'both still on Job_Queue, oldest first').to.deep.equal([a, b]);
        expect(await blocking.waitForIntake(10, stop, 10, ['file']), 'no token: the wait times out and reads the same queue').to.have.length(2);
      } finally {
        stop.stop();
        blocking.close();
      }
    });

    it('waits out a Redis that is gone without a word, and goes on when it is back', async function () {
      this.timeout(30_000);
      const aof = await RedisServer.start({ appendOnly: true });
      const store = await Store.open(aof.url, 'blocking', 'actor');
      const log = recorder();
      const blocking = store.blocking(log);
      const stop = new StopSignal();
      try {
        expect(await blocking.takeGranted(10, 10, stop)).to.deep.equal([]);
        await aof.kill9();
        // The call waits for Redis to come back (the watchdog reconnects, the command is sent again).
        const during = blocking.takeGranted(10, 10, stop);
        await aof.restart();
        await store.redis.lpush(store.keys.grantedQueue, 'a', 'b'); // as grants push them: a first
        const taken = [...(await during), ...(await blocking.takeGranted(10, 10, stop))];
        expect(taken, 'oldest first').to.deep.equal(['a', 'b']);
        expect(log.lines).to.deep.equal([]);
      } finally {
        stop.stop();
        blocking.close();
        await store.close();
        await aof.stop();
      }
    });
  });

  describe('on Redis Cluster', function () {
    it('runs every transition on a one-node cluster, which refuses a script straying out of its hash slot', async function () {
      const cluster = await RedisServer.start({ extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'] });
      const store = await Store.open(cluster.url, 'clustered', 'cli');
      try {
        await store.redis.call('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
        await waitFor('the cluster to serve every slot', async () => /cluster_state:ok/.test(String(await store.redis.call('CLUSTER', 'INFO'))));
        const stray = await store.redis.eval('#!lua\nreturn redis.call("GET", "elsewhere")', 1, store.keys.jobs).then(() => 'ran', (err: Error) => err.message);
        expect(stray, 'a script touching a key of another slot').to.match(/do not hash to the same slot/);

        const f = new Fixture(store);
        const [a, b, c, d] = await f.queue(4, { timeoutMs: 1000, retries: 1 });
        const [bad] = await f.add(1);
        expect(await store.route([reject(bad, 'no')], T0)).to.deep.equal({ routed: 0, rejected: 1 });
        const hostPools: GrantPool[] = [{ location: 'host:h1', limit: 1, queues: ['host:h1', 'any'] }, ...f.pools(2)];
        expect(await store.grant(hostPools, 100, T0)).to.deep.equal({ granted: 2, nextDueMs: null });
        const [first, second] = await f.take();
        expect(await f.start([first, second], T0)).to.equal(T0 + 1000);
        await store.saveProgress([{ id: first.id, run: 1, steps: [] }]);
        expect((await store.enforceLimits([first], T0 + 1000, 10))[0]).to.include({ signal: 'SIGTERM', reason: 'timed out' });
        await store.lookAgain([{ id: second.id, at: T0 + 5 }]);
        expect(await store.dropFromRunning([bad])).to.equal(0);
        expect(await store.finishRuns([ended(first.id, 1, 'failed'), ended(second.id, 1, 'succeeded')], hostPools, T0 + 2000)).to.deep.equal({ recorded: 2, handedOff: 2 });
        expect(await store.cancel([c, d], T0 + 2001)).to.deep.equal(['cancelled', 'cancelled']);
        expect(await store.relaunch(a, 1, T0 + 2002)).to.equal(null);
        expect(await store.grant(hostPools, 100, T0 + 60_000)).to.deep.equal({ granted: 1, nextDueMs: null });
        expect(await store.retry([c], T0 + 60_001)).to.deep.equal(['queued']);
        expect(await store.explainWait('local', 'waiting', 10)).to.equal(1);
        expect((await store.getJobs([a, b, c, d])).map((j) => j?.state)).to.deep.equal(['granted', 'succeeded', 'queued', 'cancelled']);
      } finally {
        await store.close();
        await cluster.stop();
      }
    });
  });

  describe('durability', function () {
    it('keeps every job, queue and slot exactly across kill -9 of an append-only redis-server', async function () {
      const aof = await RedisServer.start({ appendOnly: true });
      try {
        const store = await Store.open(aof.url, 'durable', 'cli');
        const f = new Fixture(store);
        const ids = await f.queue(8, { retries: 1 });
        await f.add(2); // still in Job_Queue
        await f.grant(3);
        const taken = await f.take();
        expect(await f.grant(4), 'one more, left in Granted_Queue').to.deep.equal({ granted: 1, nextDueMs: null });
        await f.start(taken.slice(0, 2));
        expect(await f.finish([ended(taken[0].id, 1, 'failed')], 4, T0 + 10), 'a retry in Delayed; its slot handed on').to.deep.equal({ recorded: 1, handedOff: 1 });
        expect(await store.cancel([ids[7]], T0 + 11)).to.deep.equal(['cancelled']);
        const before = await f.dump();
        expect(before, 'every kind of key is there').to.include.keys('Job_Queue', 'Job_Queue:local', `Granted_Queue:${defaultNodeName()}`, `Running_Queue:${defaultNodeName()}`, `LocalJobs:${defaultNodeName()}`, 'Delayed', 'Events', `job:${taken[0].id}:runs`);
        await store.close();

        await aof.kill9();
        await aof.restart();

        const reopened = new Fixture(await Store.open(aof.url, 'durable', 'cli'));
        try {
          expect(await reopened.dump()).to.deep.equal(before);
          // ...and it goes on from there: the running job ends and its slot goes to the next in line.
          expect(await reopened.finish([ended(taken[1].id, 1, 'succeeded')], 4, T0 + 20)).to.deep.equal({ recorded: 1, handedOff: 1 });
          expect(await reopened.db.scard(reopened.k.localJobs)).to.equal(4);
        } finally {
          await reopened.store.close();
        }
      } finally {
        await aof.stop();
      }
    });
  });
});

describe('the store is the one way to Redis', function () {
  const BY_HAND: [RegExp, string][] = [
    [/[\w)!\]]\.redis\b/, 'the connection (store.redis)'],
    [/[\w)!\]]\.keys\b(?!\s*\()/, 'key names (store.keys)'],
    [/\bcreateRedis\(|from 'ioredis'/, 'a connection of its own'],
  ];

  function sources(dir: string): string[] {
    return readdirSync(join(PROJECT_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => `${dir}/${file}`);
  }

  function byHand(file: string): string[] {
    const found: string[] = [];
    readFileSync(join(PROJECT_ROOT, file), 'utf8').split('\n').forEach((line, i) => {
      if (/^\s*(\/\/|\*)/.test(line)) return; // comments may name them
      for (const [pattern, what] of BY_HAND) if (pattern.test(line)) found.push(`${file}:${i + 1} uses ${what}: ${line.trim()}`);
    });
    return found;
  }

  it('leaves Redis commands and key names to lib/store in lib/ and actors/', function () {
    const files = [...sources('lib'), ...sources('actors')].filter((file) => !file.startsWith('lib/store/'));
    expect(files.length, 'the sources were found').to.be.greaterThan(20);
    expect(files.flatMap(byHand), 'use (or add) a Store method instead').to.deep.equal([]);
  });
});

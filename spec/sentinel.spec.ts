import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../lib/store/store.js';
import { SentinelDeployment } from './support/redis-sentinel.js';
import { Workspace } from './support/workspace.js';
import { waitFor } from './support/wait-for.js';
import { expectEachRanOnce } from './support/exactly-once.js';

// Redis Sentinel, for real: a master, a replica and three Sentinels on loopback. Jobs run while
// the master is killed with kill -9; the Sentinels promote the replica and the supervisor goes
// on with it. Replication is asynchronous, so what a start depends on (the grant, the take from
// Granted_Queue, markRunning) waits for the replica (lib/store/replica-wait.ts): every job must
// end exactly once -- in its record, its runs, and the ledger the jobs append to.

const JOBS = 40;
const DONE_BEFORE_KILL = 8;

describe('Redis Sentinel: kill -9 of the master while jobs run', function () {
  this.timeout(150_000);
  let sentinel: SentinelDeployment;
  let ws: Workspace;
  let store: Store | null = null;

  before(async function () {
    sentinel = await SentinelDeployment.start();
    ws = await Workspace.create({ redisUrl: sentinel.url, config: { LocalMaxJobs: 4, PollPeriod: '500ms', RetryBackoff: '50ms', LogLevel: 'info' } });
  });

  after(async function () {
    await store?.close();
    await ws?.dispose();
    await sentinel?.stop();
  });

  it('fails over to the replica, and every job ends exactly once', async function () {
    const ledger = join(ws.dir, 'ledger');
    const files = Array.from({ length: JOBS }, (_, i) => ws.write(`jobs/j${i}.yaml`, `Order: [{Run: 'echo "$JM_JOB_ID $JM_RUN" >> ${ledger}; sleep 1'}]`));
    const supervisor = await ws.startSupervisor();
    expect(supervisor.log).to.match(/Redis redis\+sentinel:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/mymaster/);
    const queued = await ws.cli('queue', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = Workspace.ids(queued.stdout);
    // The 'actor' role waits a failover out, as the supervisor's actors do.
    store = await Store.open(sentinel.url, 'default', 'actor');
    const open = store;
    const ended = async () => (await open.getFields(ids, ['state'])).filter(([state]) => state === 'succeeded' || state === 'failed' || state === 'cancelled').length;
    await waitFor(`${DONE_BEFORE_KILL} jobs to end`, async () => (await ended()) >= DONE_BEFORE_KILL || null, 60_000);

    const oldMaster = (await sentinel.master())!;
    const killedAt = Date.now();
    const endedAtKill = await ended();
    await oldMaster.kill9();
    const newMaster = await waitFor('the Sentinels to promote the replica', async () => {
      const master = await sentinel.master();
      return master && master !== oldMaster ? master : null;
    }, 30_000);
    const failoverMs = Date.now() - killedAt;
    await waitFor('every job to end', async () => (await ended()) === JOBS || null, 90_000);
    console.log(`      ${JOBS} jobs; ${endedAtKill} had ended when the master (pid ${oldMaster.pid}) was killed; the Sentinels named ${newMaster.address} master after ${failoverMs} ms`);

    await expectEachRanOnce(store, ids, ledger, supervisor.log);
    expect(supervisor.running, 'the supervisor outlived the failover').to.equal(true);
  });
});

describe('Redis Sentinel: a failover that loses writes the master acknowledged', function () {
  this.timeout(120_000);
  let sentinel: SentinelDeployment;
  let ws: Workspace;
  let store: Store | null = null;

  before(async function () {
    sentinel = await SentinelDeployment.start();
    ws = await Workspace.create({ redisUrl: sentinel.url, config: { LocalMaxJobs: 1, PollPeriod: '500ms', RetryBackoff: '50ms', LogLevel: 'info' } });
  });

  after(async function () {
    await store?.close();
    await ws?.dispose();
    await sentinel?.stop();
  });

  // Job A holds the only slot; B waits for it. The link to the replica is frozen, then A ends:
  // the master records A's end and grants B its slot, the starter takes B -- and none of it
  // reaches the replica. The master is killed while the fetcher and the starter wait for the
  // replica to confirm. On the promoted replica A still runs and B still waits: A's end must be
  // recorded again, and B must run once (not once from the lost take and once more).
  it('records the lost end again and starts the job whose grant was lost exactly once', async function () {
    const ledger = join(ws.dir, 'ledger');
    const go = join(ws.dir, 'go');
    const a = ws.write('jobs/a.yaml', `Order: [{Run: 'echo "$JM_JOB_ID $JM_RUN" >> ${ledger}; while [ ! -e ${go} ]; do sleep 0.05; done'}]`);
    const b = ws.write('jobs/b.yaml', `Order: [{Run: 'echo "$JM_JOB_ID $JM_RUN" >> ${ledger}'}]`);
    const supervisor = await ws.startSupervisor();
    const queued = await ws.cli('queue', a, b);
    expect(queued.code, queued.stderr).to.equal(0);
    const [idA, idB] = Workspace.ids(queued.stdout);
    store = await Store.open(sentinel.url, 'default', 'actor');
    const open = store;
    await waitFor('A to run, and B to wait for its slot', async () => {
      const [[stateA], [stateB]] = await open.getFields([idA, idB], ['state']);
      return (stateA === 'running' && stateB === 'queued') || null;
    });

    const master = (await sentinel.master())!;
    const replica = sentinel.servers.find((server) => server !== master)!;
    // A's start confirmed: on the replica, and no one waiting for it any more (a WAIT that the
    // freeze cut off would give up and leave the next writes unconfirmed: the documented window).
    await waitFor('the replica to have A running, and no WAIT pending', async () => {
      const onReplica = await replica.call('HGET', open.keys.job(idA), 'state');
      const waiting = String(await master.call('CLIENT', 'LIST')).split('\n').some((line) => /\bflags=\w*b\w* .*\bcmd=wait\b/.test(line));
      return (onReplica === 'running' && !waiting) || null;
    });
    sentinel.replication.freeze();
    writeFileSync(go, '');
    // On the master, A's end is recorded and B is taken from Granted_Queue; the replica has
    // neither. Killed at once, within the second that a start waits for a replica.
    await waitFor('A to end and B to be taken, on the master', async () => {
      const [stateA, stateB, granted] = await Promise.all([
        master.call('HGET', open.keys.job(idA), 'state'), master.call('HGET', open.keys.job(idB), 'state'), master.call('LLEN', open.keys.grantedQueue),
      ]);
      if (stateA !== 'succeeded' || (stateB !== 'granted' && stateB !== 'running') || granted !== 0) return null;
      await master.kill9();
      sentinel.replication.cut();
      return true;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${supervisor.log}`);
    });
    await waitFor('the Sentinels to promote the replica', async () => {
      const now = await sentinel.master();
      return now && now !== master ? now : null;
    }, 30_000);
    await waitFor('both jobs to end', async () => (await open.getFields([idA, idB], ['state'])).every(([state]) => state === 'succeeded') || null, 60_000);

    const lines = readFileSync(ledger, 'utf8').trim().split('\n');
    expect(lines.sort(), `the ledger\n${supervisor.log}`).to.deep.equal([`${idA} 1`, `${idB} 1`].sort());
    expect((await store.runsOf(idA)).map((r) => r.outcome)).to.deep.equal(['succeeded']);
    expect((await store.runsOf(idB)).map((r) => r.outcome)).to.deep.equal(['succeeded']);
    expect(await store.redis.scard(store.keys.localJobs), 'slots still taken').to.equal(0);
  });
});

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../lib/store/store.js';
import { SentinelDeployment } from './support/redis-sentinel.js';
import { Workspace } from './support/workspace.js';
import { waitFor } from './support/wait-for.js';

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

    const records = await store.getJobs(ids);
    expect(records.filter((r) => r?.state !== 'succeeded').map((r) => `${r?.id}:${r?.state}:${r?.reason}`), supervisor.log).to.deep.equal([]);
    const lines = readFileSync(ledger, 'utf8').trim().split('\n');
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line.split(' ')[0], (counts.get(line.split(' ')[0]) ?? 0) + 1);
    expect(ids.filter((id) => counts.get(id) !== 1), `jobs not in the ledger exactly once:\n${lines.join('\n')}`).to.deep.equal([]);
    expect(lines.length).to.equal(JOBS);
    for (const record of records) {
      const runs = await store.runsOf(record!.id);
      expect(runs.map((r) => r.outcome), `job ${record!.id}`).to.deep.equal(['succeeded']);
    }
    const k = store.keys;
    expect(await store.redis.scard(k.localJobs), 'slots still taken').to.equal(0);
    expect(await store.redis.llen(k.grantedQueue)).to.equal(0);
    expect(await store.redis.zcard(k.runningQueue)).to.equal(0);
    expect(supervisor.running, 'the supervisor outlived the failover').to.equal(true);
  });
});

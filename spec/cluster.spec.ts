import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RedisCluster } from './support/redis-cluster.js';
import { Workspace } from './support/workspace.js';

// Redis Cluster, for real: three masters on loopback. A supervisor (its blocking waits, every
// script, the CLI) works through ioredis' Cluster client, and every key of the deployment lives
// in one hash slot, {Deployment}: so each script's keys are on one node, as Cluster requires.

describe('Redis Cluster: a supervisor on a 3-master cluster', function () {
  this.timeout(120_000);
  let cluster: RedisCluster;
  let ws: Workspace;

  before(async function () {
    cluster = await RedisCluster.start(3);
    ws = await Workspace.create({ redisUrl: cluster.url, config: { LocalMaxJobs: 2, PollPeriod: '500ms', RetryBackoff: '50ms', LogLevel: 'info' } });
  });

  after(async function () {
    await ws?.dispose();
    await cluster?.stop();
  });

  it('runs local jobs to the end (a retry among them), with every key of the deployment in one hash slot', async function () {
    const ledger = join(ws.dir, 'ledger');
    const files = Array.from({ length: 12 }, (_, i) => ws.write(`jobs/j${i}.yaml`, `Order: [{Run: 'echo "$JM_JOB_ID" >> ${ledger}; sleep 0.1'}]`));
    const marker = join(ws.dir, 'failed-once');
    files.push(ws.write('jobs/flaky.yaml', `Retries: 1\nOrder: [{Run: 'test -e ${marker} || { touch ${marker}; exit 3; }'}]`));
    const supervisor = await ws.startSupervisor();
    expect(supervisor.log).to.match(/Redis redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/);
    const queued = await ws.cli('queue', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = Workspace.ids(queued.stdout);
    const waited = await ws.cli('wait', ...ids, '--timeout', '60s');
    expect(waited.code, `${waited.stdout}${waited.stderr}\n${supervisor.log}`).to.equal(0);

    const store = await ws.store();
    const records = await store.getJobs(ids);
    expect(records.map((r) => r?.state)).to.deep.equal(ids.map(() => 'succeeded'));
    expect((await store.runsOf(ids[12])).map((r) => r.outcome), 'the flaky job: failed, then retried').to.deep.equal(['failed', 'succeeded']);
    const lines = readFileSync(ledger, 'utf8').trim().split('\n');
    expect(lines.sort()).to.deep.equal(ids.slice(0, 12).sort());
    expect(await store.redis.scard(store.keys.localJobs), 'slots still taken').to.equal(0);

    const keys = await cluster.keys('jm:*');
    expect(keys.length, 'the deployment has keys').to.be.greaterThan(20);
    const slots = new Set(await Promise.all(keys.map(async ({ key }) => Number(await cluster.nodes[0].call('CLUSTER', 'KEYSLOT', key)))));
    expect([...slots], 'hash slots of the deployment').to.have.length(1);
    expect(new Set(keys.map((k) => k.node)).size, 'nodes holding the deployment').to.equal(1);

    const status = await ws.cli('status');
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/running/);
    expect(supervisor.log, 'the supervisor log').not.to.match(/"level":"(error|fatal)"|refused/);
    const listed = await ws.cli('jobs', '--json');
    expect(listed.code, listed.stderr).to.equal(0);
    expect((JSON.parse(listed.stdout) as { jobs: { state: string }[] }).jobs.map((j) => j.state)).to.deep.equal(ids.map(() => 'succeeded'));
  });

  it('finds the hosts holding slots on the master of the deployment\'s slot (SCAN reads one node)', async function () {
    const store = await ws.store();
    const key = store.keys.remoteJobs('gone-host');
    await store.redis.sadd(key, '999');
    try {
      expect(await store.hostsHoldingSlots()).to.deep.equal(['gone-host']);
    } finally {
      await store.redis.del(key);
    }
  });
});

import { expect } from 'chai';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Workspace } from './support/workspace.js';
import { alive } from './support/processes.js';
import { waitFor } from './support/wait-for.js';

// The supervisor's life: the embedded Redis, start/stop/restart/status, one supervisor per state
// directory, actors that die and come back, a Redis that dies and comes back.

function ledgerCounts(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) counts.set(line, (counts.get(line) ?? 0) + 1);
  return counts;
}

describe('the embedded Redis and the supervisor lifecycle', function () {
  let ws: Workspace;

  beforeEach(async function () {
    ws = await Workspace.create({ embedded: true });
  });

  afterEach(async function () {
    await ws.dispose();
  });

  it('starts its own redis-server: unix socket only, owner-only, append-only', async function () {
    const started = await ws.cli('start', '--detach');
    expect(started.code, started.stderr).to.equal(0);
    const pid = Number(readFileSync(join(ws.stateDir, 'supervisor.pid'), 'utf8'));
    expect(alive(pid)).to.equal(true);
    const redisDir = join(ws.stateDir, 'redis');
    expect(statSync(redisDir).mode & 0o777).to.equal(0o700);
    expect(statSync(join(redisDir, 'redis.sock')).mode & 0o777).to.equal(0o700);
    const redis = new Redis({ path: join(redisDir, 'redis.sock') });
    try {
      expect(await redis.config('GET', 'port')).to.deep.equal(['port', '0']);
      expect(await redis.config('GET', 'appendonly')).to.deep.equal(['appendonly', 'yes']);
    } finally {
      redis.disconnect();
    }
    const status = await ws.cli('status', '--json');
    expect(status.code).to.equal(0);
    expect(JSON.parse(status.stdout).supervisor.pid).to.equal(pid);
    const job = ws.write('hello.yaml', 'Order: [{Run: "echo hi"}]');
    expect((await ws.cli('queue', '--wait', job)).code).to.equal(0);

    const stopped = await ws.cli('stop');
    expect(stopped.code, stopped.stderr).to.equal(0);
    expect(alive(pid)).to.equal(false);
    expect(existsSync(join(ws.stateDir, 'supervisor.pid'))).to.equal(false);
    expect(existsSync(join(redisDir, 'redis.sock')), 'the embedded redis-server stopped too').to.equal(false);
    expect((await ws.cli('status')).code).to.equal(3);
  });

  it('queues without a supervisor, and the jobs run when one starts', async function () {
    const job = ws.write('later.yaml', 'Order: [{Run: "echo later"}]');
    const queued = await ws.cli('queue', job);
    expect(queued.code, queued.stderr).to.equal(0);
    const [id] = Workspace.ids(queued.stdout);
    expect(existsSync(join(ws.stateDir, 'redis', 'redis.sock')), 'queue stopped the redis-server it started').to.equal(false);
    await ws.startSupervisor();
    const waited = await ws.cli('wait', id, '--json');
    expect(waited.code).to.equal(0);
    expect((await ws.cli('logs', id)).stdout).to.equal('later\n');
  });

  it('refuses a second supervisor on the same state directory', async function () {
    const first = await ws.startSupervisor();
    const second = await ws.cli('start');
    expect(second.code).to.equal(3);
    expect(second.stderr).to.contain(`already running (pid ${first.pid})`);
  });

  it('restarts without running a job twice: a running job is picked up, not rerun', async function () {
    const ledger = join(ws.dir, 'ledger');
    await ws.cli('start', '--detach');
    const job = ws.write('slow.yaml', `Order: [{Run: 'echo "$JM_JOB_ID $JM_RUN" >> ${ledger}; sleep 1.5'}]`);
    const [id] = Workspace.ids((await ws.cli('queue', job)).stdout);
    await waitFor('the job to start', () => existsSync(ledger));
    const restarted = await ws.cli('restart');
    expect(restarted.code, restarted.stderr).to.equal(0);
    const waited = await ws.cli('wait', id, '--json');
    expect(waited.code, waited.stdout).to.equal(0);
    expect([...ledgerCounts(ledger)]).to.deep.equal([[`${id} 1`, 1]]);
  });
});

describe('actors and Redis that die', function () {
  let ws: Workspace;

  beforeEach(async function () {
    ws = await Workspace.create({ appendOnly: true, config: { LocalMaxJobs: 4, PollPeriod: '500ms', LogLevel: 'info' } });
  });

  afterEach(async function () {
    await ws.dispose();
  });

  for (const actor of ['manager', 'starter', 'fetcher']) {
    it(`restarts a crashed ${actor} and every job still runs exactly once`, async function () {
      const ledger = join(ws.dir, 'ledger');
      await ws.startSupervisor();
      const files = Array.from({ length: 30 }, (_, i) => ws.write(`jobs/j${i}.yaml`, `Order: [{Run: 'echo "$JM_JOB_ID" >> ${ledger}; sleep 0.05'}]`));
      const ids = Workspace.ids((await ws.cli('queue', ...files)).stdout);
      await waitFor('some jobs to run', () => existsSync(ledger) && readFileSync(ledger, 'utf8').split('\n').length > 5);
      expect((await ws.cli('debug', 'crash-actor', actor)).code).to.equal(0);
      const waited = await ws.cli('wait', ...ids, '--json', '--timeout', '60s');
      expect(waited.code, waited.stdout).to.equal(0);
      const counts = ledgerCounts(ledger);
      expect(ids.filter((id) => counts.get(id) !== 1)).to.deep.equal([]);
      // Jobs go on while the actor is away (a finishing job hands its slot on by itself), so
      // the actor may still be starting when they are all done: wait for it.
      const status = await waitFor(`the ${actor} to be back`, async () => {
        const s = JSON.parse((await ws.cli('status', '--json')).stdout);
        return s.supervisor.actors[actor].state === 'ready' ? s : null;
      });
      expect(status.supervisor.actors[actor].restarts).to.equal(1);
    });
  }

  it('goes on after kill -9 of redis-server (append-only file on) once it is back', async function () {
    const ledger = join(ws.dir, 'ledger');
    await ws.startSupervisor();
    const files = Array.from({ length: 30 }, (_, i) => ws.write(`jobs/r${i}.yaml`, `Order: [{Run: 'echo "$JM_JOB_ID" >> ${ledger}; sleep 0.1'}]`));
    const ids = Workspace.ids((await ws.cli('queue', ...files)).stdout);
    await waitFor('some jobs to run', () => existsSync(ledger) && readFileSync(ledger, 'utf8').split('\n').length > 5);
    await ws.redis!.kill9();
    await ws.redis!.restart();
    const waited = await ws.cli('wait', ...ids, '--json', '--timeout', '60s');
    expect(waited.code, waited.stdout).to.equal(0);
    const counts = ledgerCounts(ledger);
    expect(ids.filter((id) => counts.get(id) !== 1)).to.deep.equal([]);
    const store = await ws.store();
    expect(await store.redis.scard(store.keys.localJobs)).to.equal(0);
  });
});

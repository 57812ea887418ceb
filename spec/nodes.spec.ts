import { expect } from 'chai';
import { hostname } from 'node:os';
import type { JobRecord } from '../lib/store/job-record.js';
import { killAll, pidsWithEnv } from './support/processes.js';
import { waitFor } from './support/wait-for.js';
import { FAST_CONFIG, Workspace } from './support/workspace.js';

// Several supervisors on one Redis (issue 12): each is a node with its own local slots, run logs
// and launcher; local jobs go to any node with room, or to the one they name; a node's name is
// taken while it runs; a node whose machine is gone is forgotten and its runs retried.

interface NodeJson {
  name: string;
  host: string;
  pid: number;
  lease: string;
  slots: { used: number; total: number };
}

/** The most of `intervals` that overlap at any instant (an end at t comes before a start at t). */
function mostAtOnce(intervals: [number, number][]): number {
  const edges = intervals.flatMap(([start, end]): [number, number][] => [[start, 1], [end, -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (now += step));
  return most;
}

describe('nodes: two supervisors on one Redis', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let second: ReturnType<Workspace['node']>;

  before(async function () {
    ws = await Workspace.create({ config: { ...FAST_CONFIG, LocalMaxJobs: 4, NodeName: 'ws1', NodeDownAfter: '10s', Web: { Listen: null } } });
    second = ws.node('ws2', { NodeName: 'ws2' });
    await ws.startSupervisor();
    await ws.startSupervisor(second.env);
  });

  after(async function () {
    await ws?.dispose();
  });

  async function nodes(): Promise<NodeJson[]> {
    const result = await ws.cli('nodes', '--json');
    expect(result.code, result.stderr).to.equal(0);
    return (JSON.parse(result.stdout) as { nodes: NodeJson[] }).nodes;
  }

  async function records(ids: string[]): Promise<JobRecord[]> {
    const store = await ws.store();
    return (await store.getJobs(ids)).map((job) => job!);
  }

  it('lists both nodes, their leases and slots, in `nodes` and `status`', async function () {
    const listed = await nodes();
    expect(listed.map((n) => [n.name, n.host, n.lease, n.slots.total])).to.deep.equal([['ws1', hostname(), 'up', 4], ['ws2', hostname(), 'up', 4]]);
    const table = await ws.cli('nodes');
    expect(table.stdout).to.match(/^NODE\s+HOST\s+PID\s+LEASE\s+SINCE\s+SLOTS\s+WAITING\s+EC2/);
    expect(table.stdout).to.match(/\nws2\s+\S+\s+\d+\s+up\s+.*0\/4/);
    const status = await second.cli('status');
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.contain('supervisor  running (node ws2)');
    expect(status.stdout).to.match(/\nlocal:ws1\s+0\s+0\/4/);
    expect(status.stdout).to.match(/\nlocal:ws2\s+0\s+0\/4/);
    expect((await ws.cli('nodes', '--help')).stdout).to.contain('nodes forget ws2');
  });

  it('refuses a third supervisor that takes a node name already held, saying who holds it', async function () {
    const third = ws.node('ws2-again', { NodeName: 'ws2' });
    let refusal = '';
    await ws.startSupervisor(third.env).catch((err: Error) => (refusal = err.message));
    expect(refusal).to.match(/exited with code \d+/);
    expect(refusal).to.contain(`node ws2 is held by the supervisor of ${hostname()} (pid `);
    expect(refusal).to.contain(`state directory ${second.stateDir}) since `);
    expect((await nodes()).find((n) => n.name === 'ws2')?.lease, 'the holder is untouched').to.equal('up');
  });

  it('runs 40 local jobs on both nodes: at most 4 at once on each, and 8 in all', async function () {
    const files = Array.from({ length: 40 }, (_, i) => ws.write(`sleepers/s${i}.yaml`, 'Order:\n  - Run: sleep 0.5\n'));
    const queued = await ws.cli('queue', ...files, '--wait');
    expect(queued.code, queued.stderr).to.equal(0);
    const jobs = await records(Workspace.ids(queued.stdout));
    expect(jobs.map((j) => j.state)).to.deep.equal(Array(40).fill('succeeded'));
    const on = (node: string) => jobs.filter((j) => j.host === `local:${node}`).map((j): [number, number] => [j.startedAt!, j.endedAt!]);
    const figures = { ws1: mostAtOnce(on('ws1')), ws2: mostAtOnce(on('ws2')), all: mostAtOnce(jobs.map((j) => [j.startedAt!, j.endedAt!])) };
    console.log(`      most running at once (from the job records): ws1 ${figures.ws1}, ws2 ${figures.ws2}, in all ${figures.all}; jobs run: ws1 ${on('ws1').length}, ws2 ${on('ws2').length}`);
    expect(on('ws1').length + on('ws2').length, 'every job ran on a node').to.equal(40);
    expect(figures).to.deep.equal({ ws1: 4, ws2: 4, all: 8 });
    expect((await nodes()).map((n) => n.slots.used), 'no slot left taken').to.deep.equal([0, 0]);
  });

  it('runs a job that names its node there only', async function () {
    const files = Array.from({ length: 6 }, (_, i) => ws.write(`pinned/p${i}.yaml`, 'Node: ws2\nOrder:\n  - Run: echo "$JM_JOB_DIR"\n    Outputs: [dir]\n'));
    const queued = await ws.cli('queue', ...files, '--wait');
    expect(queued.code, queued.stderr).to.equal(0);
    const jobs = await records(Workspace.ids(queued.stdout));
    expect(jobs.map((j) => j.host)).to.deep.equal(Array(6).fill('local:ws2'));
    for (const job of jobs) expect(String((job.result as { dir: string }).dir)).to.contain(second.stateDir);
    const bad = ws.write('pinned/bad.yaml', 'Node: "ws 2"\nOrder:\n  - Run: "true"\n');
    const refused = await ws.cli('queue', bad);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.contain(`${bad}:1: Node: must be 1 to 63 letters, digits, _, . and -`);
  });

  it('forgets a node whose machine is gone: its running job is recorded interrupted and runs again', async function () {
    const file = ws.write('long/long.yaml', 'Node: ws2\nRetries: 1\nOrder:\n  - Run: sleep 600\n');
    const id = Workspace.ids((await ws.cli('queue', file)).stdout)[0];
    await waitFor('the long job running on ws2', async () => (await records([id]))[0].state === 'running');
    const refused = await ws.cli('nodes', 'forget', 'ws2');
    expect(refused.code, 'a node whose lease is fresh is not forgotten').to.equal(3);
    expect(refused.stderr).to.contain('node ws2 is running');

    // The machine is gone: its supervisor and its jobs with it.
    const supervisor = ws.supervisor!;
    await supervisor.kill9();
    killAll(pidsWithEnv('JM_JOB_DIR', second.stateDir));
    await waitFor('ws2 lease lapsed', async () => (await nodes()).find((n) => n.name === 'ws2')?.lease !== 'up');
    const forgot = await ws.cli('nodes', 'forget', 'ws2');
    expect(forgot.code, forgot.stderr).to.equal(0);
    expect(forgot.stdout).to.contain('forgot node ws2: 1 local run(s) lost (1 queued again, 0 failed: no retries left)');
    expect((await nodes()).map((n) => n.name)).to.deep.equal(['ws1']);
    const store = await ws.store();
    const [lost] = await store.runsOf(id);
    expect(lost).to.include({ run: 1, outcome: 'interrupted', reason: 'node ws2 was forgotten (jobmanager nodes forget): its run is lost' });
    expect(await store.getJob(id)).to.include({ state: 'queued', attempt: 2 });

    // It asked for ws2: a new ws2 (the machine replaced) runs it again.
    await ws.startSupervisor(second.env);
    await waitFor('the job running again on the new ws2', async () => (await records([id]))[0].state === 'running');
    expect(await ws.cli('cancel', id)).to.include({ code: 0 });
    await waitFor('the job cancelled', async () => (await records([id]))[0].state === 'cancelled');
  });
});

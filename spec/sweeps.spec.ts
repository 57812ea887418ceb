import { expect } from 'chai';
import { Workspace } from './support/workspace.js';
import type { JobView } from '../lib/cli/views.js';
import { Store } from '../lib/store/store.js';

// Sweeps (`Each:` in a job file: one job per row) and job selectors (ranges and names wherever
// ids are taken), end to end: a real supervisor, a real redis-server, the real command line.

interface Queued {
  queued: { id: string; name: string; file: string }[];
  sweeps: { name: string; file: string; first: string; last: string; count: number }[];
}

describe('sweeps and selectors', function () {
  let ws: Workspace;
  let store: Store;

  before(async function () {
    ws = await Workspace.create();
    await ws.startSupervisor();
    store = await ws.store();
    ws.write('echo.mjs', 'export function echo() { return { params: this.params, name: this.jobName, sample: this.env.Sample ?? null }; }\n');
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  async function queueJson(...files: string[]): Promise<Queued> {
    const result = await ws.cli('queue', ...files, '--json');
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(result.stdout) as Queued;
  }

  async function waitJson(...selectors: string[]): Promise<{ code: number | null; jobs: JobView[] }> {
    const result = await ws.cli('wait', ...selectors, '--json');
    expect(result.stdout, result.stderr).not.to.equal('');
    return { code: result.code, jobs: (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs };
  }

  async function jobCount(): Promise<number> {
    return store.redis.zcard(store.keys.jobs);
  }

  it('makes one job per combination of a map of lists, each with its row as environment variables and named Name[i]', async function () {
    const file = ws.write('grid.yaml', [
      'Name: grid',
      'Env: {Size: "overridden by the row"}',
      'Each: {Sample: [a, b, c], Size: [1, 2]}',
      'Order:',
      '  - {Run: \'echo "$Sample-$Size-$JM_JOB_NAME"\', Outputs: [out]}',
    ].join('\n'));
    const plain = await ws.cli('queue', file);
    expect(plain.code, plain.stderr).to.equal(0);
    const range = /^queued 6 jobs of sweep grid: (\d+)-(\d+)$/m.exec(plain.stdout);
    expect(range, plain.stdout).not.to.equal(null);
    expect(Number(range![2]) - Number(range![1])).to.equal(5);
    expect(plain.stdout.trim().split('\n'), 'one line, not one per job').to.have.length(1);

    const { code, jobs } = await waitJson(`${range![1]}-${range![2]}`);
    expect(code).to.equal(0);
    expect(jobs.map((j) => [j.name, j.state, j.result])).to.deep.equal([
      ['grid[0]', 'succeeded', { out: 'a-1-grid[0]' }],
      ['grid[1]', 'succeeded', { out: 'a-2-grid[1]' }],
      ['grid[2]', 'succeeded', { out: 'b-1-grid[2]' }],
      ['grid[3]', 'succeeded', { out: 'b-2-grid[3]' }],
      ['grid[4]', 'succeeded', { out: 'c-1-grid[4]' }],
      ['grid[5]', 'succeeded', { out: 'c-2-grid[5]' }],
    ]);
  });

  it('makes one job per map of a list of maps, and a function sees its row as this.params', async function () {
    const file = ws.write('list.yaml', [
      'Name: listed',
      'Modules: {m: echo.mjs}',
      'Each:',
      '  - {Sample: a, Size: 1}',
      '  - {Sample: b}',
      'Order: [{Function: echo, Module: m}]',
    ].join('\n'));
    const { sweeps } = await queueJson(file);
    expect(sweeps).to.have.length(1);
    expect(sweeps[0]).to.include({ name: 'listed', count: 2 });
    const { jobs } = await waitJson('listed');
    expect(jobs.map((j) => j.result)).to.deep.equal([
      { params: { Sample: 'a', Size: '1' }, name: 'listed[0]', sample: 'a' },
      { params: { Sample: 'b' }, name: 'listed[1]', sample: 'b' },
    ]);
  });

  it('reads rows from a CSV file with a header row (Thread jobs) and from a .jsonl file', async function () {
    ws.write('data/rows.csv', 'Sample,Size\nx,"10,5"\n\ny,20\n');
    ws.write('data/rows.jsonl', '{"Sample": "p", "Size": 3}\n\n{"Sample": "q", "Flag": true}\n');
    const csv = ws.write('data/csv.yaml', 'Name: fromcsv\nClassType: Thread\nModules: {m: ../echo.mjs}\nEach: {File: rows.csv}\nOrder: [{Function: echo, Module: m}]\n');
    const jsonl = ws.write('data/jsonl.yaml', 'Name: fromjsonl\nEach: {File: rows.jsonl}\nOrder: [{Run: \'echo "$Sample/$Size/$Flag"\', Outputs: [out]}]\n');
    const { sweeps } = await queueJson(csv, jsonl);
    expect(sweeps.map((s) => [s.name, s.count])).to.deep.equal([['fromcsv', 2], ['fromjsonl', 2]]);
    const { code, jobs } = await waitJson('fromcsv', 'fromjsonl');
    expect(code).to.equal(0);
    expect(jobs.map((j) => j.result)).to.deep.equal([
      { params: { Sample: 'x', Size: '10,5' }, name: 'fromcsv[0]', sample: 'x' },
      { params: { Sample: 'y', Size: '20' }, name: 'fromcsv[1]', sample: 'y' },
      { out: 'p/3/' },
      { out: 'q//true' },
    ]);
  });

  it('refuses a bad row with its file and line, and queues nothing (not even the good files beside it)', async function () {
    const good = ws.write('bad/good.yaml', 'Order: [{Run: "true"}]\n');
    ws.write('bad/short.csv', 'Sample,Size\nx,10\ny\n');
    ws.write('bad/nested.jsonl', '{"A": "x"}\n\n{"A": [1]}\n');
    const refusals: [string, RegExp][] = [
      [ws.write('bad/csv.yaml', 'Each: {File: short.csv}\nOrder: [{Run: "true"}]\n'), /bad\/short\.csv:3: .*expect 2, got 1/],
      [ws.write('bad/jsonl.yaml', 'Each: {File: nested.jsonl}\nOrder: [{Run: "true"}]\n'), /bad\/nested\.jsonl:3: A: must be text or a number, not a list/],
      [ws.write('bad/list.yaml', 'Each:\n  - {A: 1}\n  - {A: {x: 1}}\nOrder: [{Run: "true"}]\n'), /bad\/list\.yaml:3: Each\[1\]\.A: must be text or a number, not a mapping/],
      [ws.write('bad/name.yaml', 'Each: {1x: [1]}\nOrder: [{Run: "true"}]\n'), /bad\/name\.yaml:1: Each\.1x: "1x" is not a valid name/],
      [ws.write('bad/jm.yaml', 'Each: {JM_JOB_ID: [1]}\nOrder: [{Run: "true"}]\n'), /bad\/jm\.yaml:1: Each\.JM_JOB_ID: JM_ names are JobManager's own/],
      [ws.write('bad/missing.yaml', 'Each: {File: none.csv}\nOrder: [{Run: "true"}]\n'), /bad\/missing\.yaml:1: Each\.File: no such file: .*none\.csv/],
      [ws.write('bad/empty.yaml', 'Each: {A: []}\nOrder: [{Run: "true"}]\n'), /Each\.A: is an empty list/],
    ];
    // A row too long for the job's environment, after a quoted field over two lines: line 5.
    ws.write('bad/long.csv', `A\n"x\ny"\nshort\n${'z'.repeat(200_000)}\n`);
    refusals.push([ws.write('bad/long.yaml', 'Each: {File: long.csv}\nOrder: [{Run: "true"}]\n'), /bad\/long\.csv:5: this row takes 200004 bytes as environment variables/]);
    const values = JSON.stringify(Array.from({ length: 101 }, (_, i) => i));
    refusals.push([ws.write('bad/huge.yaml', `Each: {A: ${values}, B: ${values}, C: ${values}}\nOrder: [{Run: "true"}]\n`), /huge\.yaml:1: Each: makes more than 1,000,000 jobs/]);
    const before = await jobCount();
    for (const [file, reason] of refusals) {
      const result = await ws.cli('queue', good, file);
      expect(result.code, `${file}: ${result.stderr}`).to.equal(2);
      expect(result.stderr, file).to.match(reason).and.to.contain('nothing was queued');
    }
    expect(await jobCount(), 'nothing was queued').to.equal(before);
  });

  it('takes ranges and names in wait, cancel, show and jobs --name, and refuses those that select nothing', async function () {
    const slow = ws.write('slow.yaml', 'Name: slow\nEach: {N: [1, 2, 3, 4, 5, 6]}\nOrder: [{Run: "sleep 60"}]\n');
    const single = ws.write('single.yaml', 'Name: single\nOrder: [{Run: "true"}]\n');
    const { sweeps, queued } = await queueJson(slow, single);
    const [first, last] = [Number(sweeps[0].first), Number(sweeps[0].last)];

    const shown = await ws.cli('show', 'slow[2]', '--json');
    expect(shown.code, shown.stderr).to.equal(0);
    expect(JSON.parse(shown.stdout)).to.include({ id: String(first + 2), name: 'slow[2]' });

    const cancelled = await ws.cli('cancel', 'slow', '--json');
    expect(cancelled.code, cancelled.stderr).to.equal(0);
    expect((JSON.parse(cancelled.stdout) as { jobs: { id: string }[] }).jobs.map((j) => Number(j.id))).to.deep.equal([0, 1, 2, 3, 4, 5].map((i) => first + i));

    const waited = await waitJson(`${first}-${last}`, 'single');
    expect(waited.code, 'cancelled jobs did not succeed').to.equal(1);
    expect(waited.jobs.map((j) => [j.name, j.state])).to.deep.equal([
      ...[0, 1, 2, 3, 4, 5].map((i) => [`slow[${i}]`, 'cancelled']),
      ['single', 'succeeded'],
    ]);
    expect(waited.jobs[6].id).to.equal(queued[0].id);

    const listed = await ws.cli('jobs', '--name', 'slow', '--json');
    expect(listed.code, listed.stderr).to.equal(0);
    expect((JSON.parse(listed.stdout) as { jobs: JobView[] }).jobs.map((j) => j.name), 'newest first').to.deep.equal([5, 4, 3, 2, 1, 0].map((i) => `slow[${i}]`));

    const refusals: [string[], RegExp][] = [
      [['wait', `${last}-${first}`], /a range goes from the lower id to the higher/],
      [['cancel', 'no-such-name'], /no job is named "no-such-name"/],
      [['wait', '900000-900010'], /no job has an id in this range/],
      [['jobs', '--name', 'nothing-here'], /no job is named "nothing-here"/],
      [['show', 'slow'], /slow selects 6 jobs/],
      [['cancel', '1-2000000'], /a range may span at most 1,000,000 ids/],
    ];
    for (const [args, reason] of refusals) {
      const result = await ws.cli(...args);
      expect(result.code, args.join(' ')).to.equal(2);
      expect(result.stderr, args.join(' ')).to.match(reason);
    }
  });

  it('stores a sweep\'s definition once: its jobs hold their row, not the definition', async function () {
    const file = ws.write('shared.yaml', 'Name: shared\nEach: {N: [1, 2, 3]}\nOrder: [{Run: \'test "$N" -gt 0\'}]\n');
    const { sweeps } = await queueJson(file);
    const { code } = await waitJson('shared');
    expect(code).to.equal(0);
    const first = sweeps[0].first;
    const record = await store.redis.hgetall(store.keys.job(first));
    expect(record).to.include({ name: 'shared[0]', params: '{"N":"1"}', sweep: first });
    expect(record).not.to.have.any.keys('raw', 'spec', 'file');
    const sweep = await store.redis.hgetall(store.keys.sweep(first));
    expect(sweep).to.include({ name: 'shared', count: '3' });
    expect(sweep).to.include.keys('first', 'count', 'name', 'classType', 'file', 'baseDir', 'raw', 'spec', 'queuedAt');
    const shownJob = await store.getJob(first);
    expect(shownJob?.spec?.env).to.deep.equal({ N: '1' });
    expect(shownJob?.file).to.equal(file);
  });

  it('queues a sweep once when its submission is sent again, whole or after a crash between batches', async function () {
    // A deployment of its own, which no supervisor watches: the jobs stay in Job_Queue.
    const other = await Store.open(ws.redisUrl, 'sweep-retry', 'cli');
    try {
      const k = other.keys;
      const rows = Array.from({ length: 4500 }, (_, i) => ({ N: String(i) }));
      const sweep = { token: 'retried-sweep', name: 'retried', classType: 'Local', file: '/x/retried.yaml', baseDir: '/x', raw: { Order: [{ Run: 'true' }] }, rows };
      const first = Number(await other.addSweep(sweep));
      const ids = rows.map((_, i) => String(first + i));
      expect(await other.redis.zcard(k.jobs)).to.equal(4500);

      // Redis as a crash after the first batch (of 2,000) leaves it: the later jobs never written.
      const later = ids.slice(2000);
      const undo = other.redis.pipeline().del(...later.map((id) => k.job(id))).zrem(k.jobs, ...later).hdel(k.sweep(String(first)), 'batch:2000', 'batch:4000');
      for (const id of later) undo.lrem(k.jobQueue, 0, id);
      await undo.exec();
      expect(await other.redis.llen(k.jobQueue)).to.equal(2000);

      expect(await other.addSweep(sweep), 'the same range').to.equal(String(first));
      expect(await other.addSweep(sweep), 'and again').to.equal(String(first));
      expect(await other.redis.zrange(k.jobs, 0, -1)).to.deep.equal(ids);
      const queue = await other.redis.lrange(k.jobQueue, 0, -1);
      expect(queue, 'each job queued once').to.have.length(4500);
      expect(new Set(queue)).to.deep.equal(new Set(ids));
      expect(await other.redis.get(k.nextId), 'no ids reserved twice').to.equal(String(first + 4499));
      expect(await other.namedEntries('retried')).to.deep.equal([`${first}-${first + 4499}`]);
      expect(await other.getJob(String(first + 4499))).to.include({ name: 'retried[4499]', state: 'queued' });

      // Cancelled, most of them at once: they leave Job_Queue, which keeps the others in order.
      const cancelled = ids.slice(0, 4000);
      expect(new Set(await other.cancel(cancelled))).to.deep.equal(new Set(['cancelled']));
      expect(await other.redis.lrange(k.jobQueue, 0, -1), 'the rest, still queued in order').to.deep.equal(queue.filter((id) => !cancelled.includes(id)));
    } finally {
      await other.close();
    }
  });
});

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import type { BenchContext } from './context.js';
import { figure, type Row } from './report.js';
import { BenchSupervisor } from './timed-run.js';

// A sweep (`Each: {File: rows.csv}`): one job file, N jobs.
//   1. queued: `queue` of one file whose CSV has N rows, timed from outside (reading the CSV,
//      checking it, writing the jobs in batches), with LocalMaxJobs 0 so that they stay queued;
//      then, once the manager has routed them all, the supervisor's RSS and Redis's memory per
//      queued job (INFO used_memory, before and after).
//   2. run: M no-op Thread jobs of one sweep, `queue --wait`; the rate of each tenth of the jobs
//      to end (from the Events stream): flat means the last jobs go as fast as those in the
//      middle, whatever the queue still holds (the first tenth shares the machine with `queue`
//      still writing the sweep, and with the thread pool's start).
// Beside it, `queue` of a one-job file: what any `queue` costs (node, modules, connecting).
// No other tool here takes job files (HTCondor and Slurm are not installed).

const SETTLE_POLL_MS = 100;

export async function sweepRow(ctx: BenchContext): Promise<Row> {
  const { sweepJobs: n, sweepRunJobs: m } = ctx.options;
  const files = join(ctx.dir, 'sweep-jobs');
  mkdirSync(files, { recursive: true });
  writeRows(join(files, 'rows.csv'), n);
  writeRows(join(files, 'run.csv'), m);
  writeFileSync(join(files, 'noop.mjs'), 'export function noop() { return this.params.Sample; }\n');
  writeFileSync(join(files, 'queued.yaml'), 'Name: queued\nEach: {File: rows.csv}\nOrder: [{Run: "echo $Sample"}]\n');
  writeFileSync(join(files, 'one.yaml'), 'Name: one\nOrder: [{Run: "echo one"}]\n');
  writeFileSync(join(files, 'run.yaml'), 'Name: run\nClassType: Thread\nModules: {m: noop.mjs}\nEach: {File: run.csv}\nOrder: [{Function: noop, Module: m}]\n');
  spawnSync('sync');

  ctx.say(`sweep: ${n} jobs of one sweep queued with one \`queue\``);
  const queued = await queueSweep(ctx, join(files, 'queued.yaml'), join(files, 'one.yaml'), n);
  ctx.say(`sweep: ${m} no-op Thread jobs of one sweep run`);
  const run = await runSweep(ctx, join(files, 'run.yaml'), m);
  return {
    id: 'sweep',
    measure: `${n.toLocaleString('en-US')} jobs of one sweep (Each: {File: rows.csv}) queued; ${m.toLocaleString('en-US')} no-op Thread jobs of one sweep run`,
    jobmanager: [
      figure('queue', queued.seconds, 's'),
      figure('supervisor RSS with them queued', queued.held.rss, 'MB'),
      figure('peak', queued.held.peak, 'MB'),
      figure('Redis per queued job', queued.bytesPerJob, 'B'),
      figure('first tenth ended', run.firstRate, 'jobs/s'),
      figure('fifth', run.middleRate, 'jobs/s'),
      figure('last', run.lastRate, 'jobs/s'),
    ],
    reference: [figure('`queue` of one job file (what any queue costs)', queued.fixed, 's'), figure('supervisor RSS idle', queued.idle.rss, 'MB')],
    comparison: [`${Math.round(n / queued.seconds).toLocaleString('en-US')} jobs/s queued (${Math.round(n / Math.max(0.001, queued.seconds - queued.fixed)).toLocaleString('en-US')}/s past the fixed cost)`, `last tenth at ${(run.lastRate / run.middleRate).toFixed(2)}× the fifth's rate (each tenth: ${run.tenths.map((r) => Math.round(r)).join(', ')} jobs/s)`],
    details: { queued, run },
  };
}

function writeRows(path: string, count: number): void {
  const lines = ['Sample,Size'];
  for (let i = 0; i < count; i++) lines.push(`s${i},${i % 97}`);
  writeFileSync(path, lines.join('\n') + '\n');
}

async function queueSweep(ctx: BenchContext, file: string, one: string, n: number) {
  const dir = ctx.runDir('sweep');
  mkdirSync(dir);
  const supervisor = BenchSupervisor.start(dir, { config: { LocalMaxJobs: 0, LogLevel: 'warn', StateDir: join(dir, 'state') } });
  try {
    const idle = supervisor.memory();
    // What any `queue` costs (starting node, loading its modules, connecting): one job.
    const { seconds: fixed } = supervisor.cli('queue', one);
    const before = await usedMemory(supervisor);
    const { seconds, stdout } = supervisor.cli('queue', file);
    const k = supervisor.keys;
    for (;;) {
      const [intake, local] = await Promise.all([supervisor.redis.llen(k.jobQueue), supervisor.redis.llen(k.locationQueue('local'))]);
      if (intake === 0 && local >= n + 1) break;
      await sleep(SETTLE_POLL_MS);
    }
    const held = supervisor.memory();
    const bytesPerJob = ((await usedMemory(supervisor)) - before) / n;
    return { jobs: n, seconds, fixed, printed: stdout.trim(), idle, held, bytesPerJob };
  } finally {
    supervisor.stop();
  }
}

async function runSweep(ctx: BenchContext, file: string, m: number) {
  const dir = ctx.runDir('sweep-run');
  mkdirSync(dir);
  const supervisor = BenchSupervisor.start(dir, { config: { LocalMaxJobs: 8, LogLevel: 'warn', StateDir: join(dir, 'state') } });
  try {
    const { seconds } = supervisor.cli('queue', '--wait', file);
    // Ends in the order they happened; the time between the first tenth's first and last end.
    const events = await supervisor.redis.xrange(supervisor.keys.events, '-', '+');
    const ends = events.filter(([, f]) => f[f.indexOf('state') + 1] === 'succeeded').map(([id]) => Number(id.split('-')[0]));
    // The rate of each tenth of the ends: from the last end of the tenth before (the first
    // tenth: from the first end) to its own last end.
    const tenths: number[] = [];
    for (let t = 0; t < 10; t++) {
      const from = Math.floor((t * ends.length) / 10);
      const to = Math.floor(((t + 1) * ends.length) / 10) - 1;
      const start = t === 0 ? ends[0] : ends[from - 1];
      tenths.push((to - from + (t === 0 ? 0 : 1)) / Math.max(0.001, (ends[to] - start) / 1000));
    }
    return { jobs: m, seconds, ended: ends.length, tenths, firstRate: tenths[0], middleRate: tenths[4], lastRate: tenths[9] };
  } finally {
    supervisor.stop();
  }
}

async function usedMemory(supervisor: BenchSupervisor): Promise<number> {
  const info = await supervisor.redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { timeAddAndProcess } from './bullmq.js';
import { THREAD_NOOP, writeJobFiles } from './job-files.js';
import { figure, ratio, type Row } from './report.js';
import { redisWork, workPerJob, type WorkPerJob } from './redis-work.js';
import { BenchSupervisor, type SupervisorOptions, type Timed } from './timed-run.js';

// Thread jobs at queue speed: N no-op Thread jobs (one Function step that returns at once),
// `queue --wait` of N files, against BullMQ 5 running N no-op jobs: addBulk, then one Worker
// at concurrency 50, on a redis-server of the same kind (append-only, unix socket). JobManager
// gets the same concurrency: 50 slots (LocalMaxJobs; its pool has a thread per core, and each
// thread runs up to slots/threads jobs at once, as BullMQ's Worker runs 50 in one thread).
//
// BullMQ's figures: end to end (adds and processing) and processing alone. JobManager's: end
// to end (`queue --wait`, reading and checking the files included) and first queued → last end
// (the Events stream: what the supervisor did, comparable to BullMQ's end to end). And the same
// N jobs as one sweep (one job file with Each:), which spares the reading of N files. Each
// side's Redis work per job (its CPU, its commands) is read too: it tells how much of the gap is
// Redis's.

const BULLMQ_CONCURRENCY = 50;

/** `queue --wait` of `jobs` on a new supervisor, and what it cost its Redis per job. */
async function timeWithRedisWork(dir: string, options: SupervisorOptions, jobs: string, n: number): Promise<Timed & { redisPerJob: WorkPerJob }> {
  const supervisor = BenchSupervisor.start(dir, options);
  try {
    const before = await redisWork(supervisor.redis);
    const timed = await supervisor.queueWait(jobs);
    return { ...timed, redisPerJob: workPerJob(before, await redisWork(supervisor.redis), n) };
  } finally {
    supervisor.stop();
  }
}

export async function threadRow(ctx: BenchContext): Promise<Row> {
  const { threadJobs: n, threadSlots: slots } = ctx.options;
  const jobs = writeJobFiles(join(ctx.dir, 'thread-jobs'), n, THREAD_NOOP, 't');
  ctx.say(`thread: ${n} no-op Thread jobs on ${slots} slots, then BullMQ`);
  const dir = ctx.runDir('thread');
  mkdirSync(dir);
  const jm = await timeWithRedisWork(dir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(dir, 'state') } }, jobs, n);
  // The same jobs as one sweep (one file, Each: N rows): the pipeline without N files to read.
  const sweepDir = ctx.runDir('thread-sweep');
  mkdirSync(sweepDir);
  writeFileSync(join(sweepDir, 'noop.mjs'), 'export function noop() {}\n');
  writeFileSync(join(sweepDir, 'sweep.yaml'), `Name: sweep\nClassType: Thread\nModules: {m: noop.mjs}\nEach: {I: [${Array.from({ length: n }, (_, i) => i).join(', ')}]}\nOrder: [{Function: noop, Module: m}]\n`);
  const sweep = await timeWithRedisWork(sweepDir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(sweepDir, 'state') } }, join(sweepDir, 'sweep.yaml'), n);
  const bull = await timeAddAndProcess(await ctx.bullmq(), n, BULLMQ_CONCURRENCY, async () => {});
  const rate = (s: number) => n / s;
  const work = (w: WorkPerJob) => `${w.cpuMicros.toFixed(0)} µs of its CPU and ${w.commands.toFixed(1)} commands`;
  return {
    id: 'thread',
    measure: `${n.toLocaleString('en-US')} no-op Thread jobs, \`queue --wait\` of ${n.toLocaleString('en-US')} files, ${slots} slots`,
    jobmanager: [
      figure('end to end', rate(jm.endToEnd), 'jobs/s'), figure('first queued → last end', rate(jm.queueToEnd), 'jobs/s'),
      figure('as one sweep: end to end', rate(sweep.endToEnd), 'jobs/s'), figure('first queued → last end', rate(sweep.queueToEnd), 'jobs/s'),
    ],
    reference: [figure(`BullMQ 5 (concurrency ${BULLMQ_CONCURRENCY}) end to end`, rate(bull.endToEnd), 'jobs/s'), figure('processing', rate(bull.process), 'jobs/s')],
    comparison: [
      `${ratio(rate(jm.endToEnd), rate(bull.endToEnd))} BullMQ's end-to-end throughput`, `first queued → last end ${ratio(rate(jm.queueToEnd), rate(bull.endToEnd))}`,
      `as one sweep ${ratio(rate(sweep.endToEnd), rate(bull.endToEnd))}`, `its first queued → last end ${ratio(rate(sweep.queueToEnd), rate(bull.endToEnd))}`,
      `Redis per job: JobManager ${work(jm.redisPerJob)} (as one sweep ${work(sweep.redisPerJob)}), BullMQ ${work(bull.redisPerJob)}`,
    ],
    details: { jobs: n, slots, jobmanager: jm, sweep, bullmq: bull },
  };
}

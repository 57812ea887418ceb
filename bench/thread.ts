import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { timeAddAndProcess } from './bullmq.js';
import { THREAD_NOOP, writeJobFiles } from './job-files.js';
import { figure, ratio, type Row } from './report.js';
import { timeQueueWait } from './timed-run.js';

// Thread jobs at queue speed: N no-op Thread jobs (one Function step that returns at once),
// `queue --wait` of N files, against BullMQ 5 running N no-op jobs: addBulk, then one Worker
// at concurrency 50, on a redis-server of the same kind (append-only, unix socket). JobManager
// gets the same concurrency: 50 slots (LocalMaxJobs; its pool has a thread per core, and each
// thread runs up to slots/threads jobs at once, as BullMQ's Worker runs 50 in one thread).
//
// BullMQ's figures: end to end (adds and processing) and processing alone. JobManager's: end
// to end (`queue --wait`, reading and checking the files included) and first queued → last end
// (the Events stream: what the supervisor did, comparable to BullMQ's end to end). And the same
// N jobs as one sweep (one job file with Each:), which spares the reading of N files.

const BULLMQ_CONCURRENCY = 50;

export async function threadRow(ctx: BenchContext): Promise<Row> {
  const { threadJobs: n, threadSlots: slots } = ctx.options;
  const jobs = writeJobFiles(join(ctx.dir, 'thread-jobs'), n, THREAD_NOOP, 't');
  ctx.say(`thread: ${n} no-op Thread jobs on ${slots} slots, then BullMQ`);
  const dir = ctx.runDir('thread');
  mkdirSync(dir);
  const jm = await timeQueueWait(dir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(dir, 'state') } }, jobs);
  // The same jobs as one sweep (one file, Each: N rows): the pipeline without N files to read.
  const sweepDir = ctx.runDir('thread-sweep');
  mkdirSync(sweepDir);
  writeFileSync(join(sweepDir, 'noop.mjs'), 'export function noop() {}\n');
  writeFileSync(join(sweepDir, 'sweep.yaml'), `Name: sweep\nClassType: Thread\nModules: {m: noop.mjs}\nEach: {I: [${Array.from({ length: n }, (_, i) => i).join(', ')}]}\nOrder: [{Function: noop, Module: m}]\n`);
  const sweep = await timeQueueWait(sweepDir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(sweepDir, 'state') } }, join(sweepDir, 'sweep.yaml'));
  const bull = await timeAddAndProcess(await ctx.bullmq(), n, BULLMQ_CONCURRENCY, async () => {});
  const rate = (s: number) => n / s;
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
    ],
    details: { jobs: n, slots, jobmanager: jm, sweep, bullmq: bull },
  };
}

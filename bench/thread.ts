import { mkdirSync } from 'node:fs';
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
// (the Events stream: what the supervisor did, comparable to BullMQ's end to end).

const BULLMQ_CONCURRENCY = 50;

export async function threadRow(ctx: BenchContext): Promise<Row> {
  const { threadJobs: n, threadSlots: slots } = ctx.options;
  const jobs = writeJobFiles(join(ctx.dir, 'thread-jobs'), n, THREAD_NOOP, 't');
  ctx.say(`thread: ${n} no-op Thread jobs on ${slots} slots, then BullMQ`);
  const dir = ctx.runDir('thread');
  mkdirSync(dir);
  const jm = await timeQueueWait(dir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(dir, 'state') } }, jobs);
  const bull = await timeAddAndProcess(await ctx.bullmq(), n, BULLMQ_CONCURRENCY, async () => {});
  const rate = (s: number) => n / s;
  return {
    id: 'thread',
    measure: `${n.toLocaleString('en-US')} no-op Thread jobs, \`queue --wait\` of ${n.toLocaleString('en-US')} files, ${slots} slots`,
    jobmanager: [figure('end to end', rate(jm.endToEnd), 'jobs/s'), figure('first queued → last end', rate(jm.queueToEnd), 'jobs/s')],
    reference: [figure(`BullMQ 5 (concurrency ${BULLMQ_CONCURRENCY}) end to end`, rate(bull.endToEnd), 'jobs/s'), figure('processing', rate(bull.process), 'jobs/s')],
    comparison: [`${ratio(rate(jm.endToEnd), rate(bull.endToEnd))} BullMQ's end-to-end throughput`, `first queued → last end ${ratio(rate(jm.queueToEnd), rate(bull.endToEnd))}`],
    details: { jobs: n, slots, jobmanager: jm, bullmq: bull },
  };
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { BullmqReference } from './bullmq.js';
import { LOCAL_TRUE, THREAD_NOOP } from './job-files.js';
import { figure, type Row } from './report.js';
import { percentile } from './stats.js';
import { BenchSupervisor } from './timed-run.js';

// Idle start latency: one job queued while nothing else happens, from the moment its record
// says it was queued (queuedAt) to the moment it says it started (startedAt: the launcher's
// clock at the spawn for a Local job, the starter's for a Thread job). Local and Thread jobs in
// turn, each `queue --wait` of one file; the first of each kind (a launcher or thread pool that
// is not warm yet) is not counted. Against BullMQ: add one job to an idle Worker, the time until
// its processor starts.
//
// And exit→recorded: from the end of the job's last step (its steps' endedAt: the launcher's
// reap time, or when the fetcher read the exit; the starter's clock for a Thread job) to the
// record's endedAt (finishRun's clock, in Redis).

const WARM_UP = 2;
/** BullMQ's samples cost ~1 ms each: take enough for a p99 of its own. */
const BULLMQ_SAMPLES = 500;
/** Between two BullMQ samples, so that the Worker is back to waiting (idle) when a job comes. */
const BULLMQ_IDLE_MS = 10;

interface QueuedJob {
  queuedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  steps: { endedAt: number | null }[];
}

/** One job's queue→start and exit→recorded (ms). */
function startLatency(supervisor: BenchSupervisor, file: string): { start: number; recorded: number } {
  const { stdout } = supervisor.cli('queue', '--wait', '--json', file);
  const [job] = (JSON.parse(stdout) as { jobs: QueuedJob[] }).jobs;
  const exitedAt = job.steps.at(-1)?.endedAt ?? null;
  if (job.queuedAt === null || job.startedAt === null || job.endedAt === null || exitedAt === null) {
    throw new Error(`a job of ${file} ended without queuedAt, startedAt, endedAt and its step's end in its record`);
  }
  return { start: job.startedAt - job.queuedAt, recorded: job.endedAt - exitedAt };
}

async function bullmqLatency(bull: BullmqReference, samples: number): Promise<number[]> {
  const queue = bull.queue();
  let started: (at: bigint) => void = () => {};
  const worker = bull.worker(queue, async () => started(process.hrtime.bigint()), 50);
  void worker.run();
  await worker.waitUntilReady();
  const latencies: number[] = [];
  try {
    for (let i = 0; i < samples + WARM_UP; i++) {
      await sleep(BULLMQ_IDLE_MS);
      const at = new Promise<bigint>((resolve) => (started = resolve));
      const added = process.hrtime.bigint();
      await queue.add('job', { i });
      const latency = Number((await at) - added) / 1e6;
      if (i >= WARM_UP) latencies.push(latency);
    }
  } finally {
    await worker.close();
    await queue.close();
  }
  return latencies;
}

export async function latencyRow(ctx: BenchContext): Promise<Row> {
  const samples = ctx.options.latencySamples;
  const dir = ctx.runDir('latency');
  mkdirSync(dir);
  const files = { local: join(dir, 'local.yaml'), thread: join(dir, 'thread.yaml') };
  writeFileSync(files.local, LOCAL_TRUE);
  writeFileSync(files.thread, THREAD_NOOP);
  writeFileSync(join(dir, 'noop.mjs'), 'export function noop() {}\n');
  ctx.say(`latency: ${samples} Local and ${samples} Thread jobs queued one at a time, then BullMQ`);
  const supervisor = BenchSupervisor.start(dir, { config: { LocalMaxJobs: 8, LogLevel: 'warn', StateDir: join(dir, 'state') } });
  const local: number[] = [];
  const thread: number[] = [];
  const recorded: number[] = [];
  try {
    for (let i = 0; i < samples + WARM_UP; i++) {
      const l = startLatency(supervisor, files.local);
      const t = startLatency(supervisor, files.thread);
      if (i >= WARM_UP) local.push(l.start), thread.push(t.start), recorded.push(l.recorded, t.recorded);
    }
  } finally {
    supervisor.stop();
  }
  const bull = await bullmqLatency(await ctx.bullmq(), BULLMQ_SAMPLES);
  const p = (values: number[], q: number) => percentile(values, q);
  return {
    id: 'latency',
    measure: `idle queue→start (record's queuedAt → startedAt) and exit→recorded, ${samples} jobs of each kind`,
    jobmanager: [
      figure('Local p50', p(local, 50), 'ms'), figure('p99', p(local, 99), 'ms'), figure('Thread p50', p(thread, 50), 'ms'), figure('p99', p(thread, 99), 'ms'),
      figure('exit→recorded p50', p(recorded, 50), 'ms'), figure('p99', p(recorded, 99), 'ms'),
    ],
    reference: [figure(`BullMQ add→processor (${BULLMQ_SAMPLES} jobs) p50`, p(bull, 50), 'ms'), figure('p99', p(bull, 99), 'ms')],
    comparison: [`Local p50 ${(p(local, 50) / p(bull, 50)).toFixed(0)}× BullMQ's`, `Thread p50 ${(p(thread, 50) / p(bull, 50)).toFixed(0)}×`],
    details: { local, thread, recorded, bullmq: bull },
  };
}

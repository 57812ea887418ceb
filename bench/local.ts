import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { timeAddAndProcess } from './bullmq.js';
import { LOCAL_TRUE, writeJobFiles } from './job-files.js';
import { figure, ratio, type Row } from './report.js';
import { timeQueueWait, type Timed } from './timed-run.js';
import { timeXargs } from './xargs.js';

// Local throughput: N jobs of `Run: "true"` with S local slots, against xargs -P S running the
// same command (before and after, averaged) and BullMQ with a processor that spawns `true`.
//
// JobManager's time is measured two ways:
//   end to end  `jobmanager queue --wait DIR`: read and check N job files, queue them, run them,
//               wait for all: what a user waits for;
//   pipeline    first grant to last end, from the Events stream: the scheduling cost per job,
//               the figure comparable to xargs (which reads no files).

/** One supervisor run of `jobs` (a directory of local job files) with `slots` slots. */
export async function timeLocalJobs(ctx: BenchContext, jobs: string, slots: number, env: NodeJS.ProcessEnv = {}): Promise<Timed> {
  const dir = ctx.runDir('local');
  mkdirSync(dir);
  return timeQueueWait(dir, { config: { LocalMaxJobs: slots, LogLevel: 'warn', StateDir: join(dir, 'state') }, env }, jobs);
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    spawn('true', { stdio: 'ignore' }).on('error', reject).on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
  });
}

export async function localRow(ctx: BenchContext): Promise<Row> {
  const { localJobs: n, slots } = ctx.options;
  const jobs = writeJobFiles(join(ctx.dir, 'local-jobs'), n, LOCAL_TRUE);
  ctx.say(`local: xargs, ${n} jobs of \`true\` on ${slots} slots, then jobmanager, xargs again, BullMQ's spawn processor`);
  const before = timeXargs(n, slots);
  const jm = await timeLocalJobs(ctx, jobs, slots);
  const after = timeXargs(n, slots);
  const xargs = (before + after) / 2;
  const bull = await timeAddAndProcess(await ctx.bullmq(), n, slots, spawnTrue);
  return {
    id: 'local',
    measure: `${n.toLocaleString('en-US')} local \`true\` jobs, ${slots} slots`,
    jobmanager: [figure('end to end', jm.endToEnd, 's'), figure('first grant → last end', jm.pipeline, 's')],
    reference: [figure(`xargs -P${slots}`, xargs, 's'), figure("BullMQ's spawn processor", bull.endToEnd, 's')],
    comparison: [`${ratio(jm.endToEnd, xargs)} xargs' time end to end`, `${ratio(jm.pipeline, xargs)} first grant → last end`, `BullMQ spawn ${ratio(bull.endToEnd, xargs)}`],
    details: { jobs: n, slots, xargs: [before, after], jobmanager: jm, bullmqSpawn: bull },
  };
}

// Local throughput: N jobs of `Run: "true"` with 8 local slots, against xargs -P8 running the
// same command, in the same run (the machine's speed cancels out of the ratio).
//
//   npm run bench -- [--jobs 5000] [--slots 8] [--state-dir DIR]
//
// JobManager's time is measured two ways:
//   end to end  `jobmanager queue --wait DIR`: read and check N job files, queue them, run them,
//               wait for all: what a user waits for;
//   pipeline    first grant to last end, from the Events stream: the scheduling cost per job,
//               the figure comparable to xargs (which reads no files).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { seconds, timeQueueWait, type Timed } from './timed-run.js';
import { removeDir, tempDir } from '../spec/support/temp.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '5000' }, slots: { type: 'string', default: '8' }, keep: { type: 'boolean', default: false }, 'state-dir': { type: 'string' } } });
const N = Number(values.jobs);
const SLOTS = Number(values.slots);

function xargs(): number {
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', `seq ${N} | xargs -P${SLOTS} -n1 true`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('xargs failed');
  return seconds(start);
}

async function jobmanager(dir: string): Promise<Timed> {
  const jobs = join(dir, 'jobs');
  mkdirSync(jobs);
  for (let i = 0; i < N; i++) writeFileSync(join(jobs, `j${i}.yaml`), 'Order: [{Run: "true"}]\n');
  // The files just written are flushed now, not by the kernel in the middle of the timed run.
  spawnSync('sync');
  return timeQueueWait(dir, { LocalMaxJobs: SLOTS, LogLevel: 'warn', StateDir: values['state-dir'] ?? join(dir, 'state') }, jobs);
}

const dir = tempDir('jm-bench-');
try {
  console.log(`${N} jobs of \`true\`, ${SLOTS} at a time, on ${process.platform} with ${(await import('node:os')).cpus().length} cores`);
  const before = xargs();
  const jm = await jobmanager(dir);
  const after = xargs();
  const reference = (before + after) / 2;
  const row = (name: string, s: number) => console.log(`  ${name.padEnd(34)} ${s.toFixed(2).padStart(6)} s  ${(N / s).toFixed(0).padStart(5)} jobs/s  ${(s / reference).toFixed(2)}× xargs`);
  row('xargs -P (before, after)', reference);
  row('jobmanager queue --wait (end to end)', jm.endToEnd);
  row('jobmanager first queued → last end', jm.queueToEnd);
  row('jobmanager first grant → last end', jm.pipeline);
  console.log(JSON.stringify({ jobs: N, slots: SLOTS, xargs: [before, after], jobmanager: jm, ratioEndToEnd: jm.endToEnd / reference, ratioPipeline: jm.pipeline / reference }));
} finally {
  if (!values.keep) removeDir(dir);
}

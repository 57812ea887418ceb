import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './context.js';
import { LOCAL_TRUE, writeJobFiles } from './job-files.js';
import { figure, type Row } from './report.js';
import { BenchSupervisor } from './timed-run.js';

// Many jobs queued at once: N job files queued with one `queue` (reading, checking and queueing
// them, timed from outside), then the supervisor's memory once its manager has taken them all
// in. LocalMaxJobs is 0, so that they stay queued: what is measured is the cost of holding them.
// No reference: no other tool here takes job files.

const SETTLE_POLL_MS = 100;

export async function queueRow(ctx: BenchContext): Promise<Row> {
  const n = ctx.options.queueFiles;
  const jobs = writeJobFiles(join(ctx.dir, 'queue-jobs'), n, LOCAL_TRUE);
  ctx.say(`queue: ${n} job files queued with one \`queue\``);
  const dir = ctx.runDir('queue');
  mkdirSync(dir);
  const supervisor = BenchSupervisor.start(dir, { config: { LocalMaxJobs: 0, LogLevel: 'warn', StateDir: join(dir, 'state') } });
  try {
    const idle = supervisor.memory();
    const { seconds } = supervisor.cli('queue', jobs);
    // The manager takes them from Job_Queue to the local queue; memory is read once it has.
    const k = supervisor.keys;
    for (;;) {
      const [intake, local] = await Promise.all([supervisor.redis.llen(k.jobQueue), supervisor.redis.llen(k.locationQueue('local'))]);
      if (intake === 0 && local >= n) break;
      await sleep(SETTLE_POLL_MS);
    }
    const held = supervisor.memory();
    return {
      id: 'queue',
      measure: `${n.toLocaleString('en-US')} job files queued with one \`queue\``,
      jobmanager: [figure('queue', seconds, 's'), figure('supervisor RSS with them queued', held.rss, 'MB'), figure('peak', held.peak, 'MB'), figure('idle', idle.rss, 'MB')],
      reference: [],
      comparison: [`${Math.round(n / seconds).toLocaleString('en-US')} jobs/s queued`],
      details: { files: n, seconds, idle, held },
    };
  } finally {
    supervisor.stop();
  }
}

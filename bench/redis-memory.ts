import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { BenchContext } from './context.js';
import { LOCAL_TRUE, writeJobFiles } from './job-files.js';
import { figure, type Row } from './report.js';
import { BenchSupervisor } from './timed-run.js';

// What a finished job costs Redis: INFO memory's used_memory before N local `true` jobs are
// queued and after all of them have finished, over N (the record, its runs, its Events entries
// and whatever else stays). And what one finished job's record and runs list take alone
// (MEMORY USAGE), to tell the two apart.

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)![1]);
}

export async function memoryRow(ctx: BenchContext): Promise<Row> {
  const n = ctx.options.memoryJobs;
  const jobs = writeJobFiles(join(ctx.dir, 'memory-jobs'), n, LOCAL_TRUE);
  ctx.say(`memory: ${n} local \`true\` jobs, Redis memory before and after`);
  const dir = ctx.runDir('memory');
  mkdirSync(dir);
  const supervisor = BenchSupervisor.start(dir, { config: { LocalMaxJobs: 8, LogLevel: 'warn', StateDir: join(dir, 'state') } });
  try {
    const redis = supervisor.redis;
    const before = await usedMemory(redis);
    supervisor.cli('queue', '--wait', jobs);
    const after = await usedMemory(redis);
    const last = String((await redis.zrange(supervisor.keys.jobs, -1, -1))[0]);
    const record = Number(await redis.memory('USAGE', supervisor.keys.job(last)));
    const runs = Number((await redis.memory('USAGE', supervisor.keys.jobRuns(last))) ?? 0);
    const perJob = (after - before) / n;
    return {
      id: 'memory',
      measure: `Redis memory per finished job (INFO memory over ${n.toLocaleString('en-US')} finished \`true\` jobs)`,
      jobmanager: [figure('per finished job', perJob / 1024, 'KB'), figure('one record alone (MEMORY USAGE)', record, 'B'), figure('its runs list', runs, 'B')],
      reference: [],
      comparison: [],
      details: { jobs: n, usedMemoryBefore: before, usedMemoryAfter: after, sampleJob: last, recordBytes: record, runsBytes: runs },
    };
  } finally {
    supervisor.stop();
  }
}

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { BenchContext } from './context.js';
import { LOCAL_TRUE, writeJobFiles } from './job-files.js';
import { figure, type Row } from './report.js';
import { BenchSupervisor } from './timed-run.js';

// What a finished job costs Redis: INFO memory's used_memory before N local `true` jobs are
// queued and after all of them have finished and been compacted (lib/retention: a finished job's
// record drops what only running needed, as it ends), over N (the record, its runs, its Events
// entries, its submission token and whatever else stays). And what one finished job's record and
// runs list take alone (MEMORY USAGE), to tell the two apart. The goal (issue 9): at most 1 KB.

const GOAL_BYTES = 1024;
const COMPACTION_WAIT_MS = 60_000;

/** Until no job's record holds pollMs (set as a job is routed, dropped as it is compacted). */
async function compacted(redis: Redis, keys: BenchSupervisor['keys'], ids: string[]): Promise<boolean> {
  const deadline = Date.now() + COMPACTION_WAIT_MS;
  while (Date.now() < deadline) {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hexists(keys.job(id), 'pollMs');
    const left = ((await pipeline.exec()) ?? []).filter(([, n]) => n === 1).length;
    if (left === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

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
    // One job first, so that what is paid once (the Lua scripts loaded, the clients' buffers, the
    // Events stream's first node) is in `before`, not spread over the jobs.
    supervisor.cli('queue', '--wait', writeJobFiles(join(ctx.dir, 'memory-warmup'), 1, LOCAL_TRUE));
    await compacted(redis, supervisor.keys, await redis.zrange(supervisor.keys.jobs, 0, -1));
    const before = await usedMemory(redis);
    supervisor.cli('queue', '--wait', jobs);
    const ids = await redis.zrange(supervisor.keys.jobs, 1, -1);
    if (!(await compacted(redis, supervisor.keys, ids))) ctx.say(`memory: some records were still not compacted after ${COMPACTION_WAIT_MS / 1000}s`);
    const after = await usedMemory(redis);
    const last = String((await redis.zrange(supervisor.keys.jobs, -1, -1))[0]);
    const record = Number(await redis.memory('USAGE', supervisor.keys.job(last)));
    const runs = Number((await redis.memory('USAGE', supervisor.keys.jobRuns(last))) ?? 0);
    const perJob = (after - before) / n;
    return {
      id: 'memory',
      measure: `Redis memory per finished job (INFO memory over ${n.toLocaleString('en-US')} finished \`true\` jobs)`,
      jobmanager: [figure('per finished job', perJob, 'B'), figure('one record alone (MEMORY USAGE)', record, 'B'), figure('its runs list', runs, 'B')],
      reference: [figure('goal', GOAL_BYTES, 'B')],
      comparison: [perJob <= GOAL_BYTES ? `within the goal of ${GOAL_BYTES} B` : `OVER the goal of ${GOAL_BYTES} B by ${Math.round(perJob - GOAL_BYTES)} B`],
      details: { jobs: n, usedMemoryBefore: before, usedMemoryAfter: after, perJobBytes: perJob, withinGoal: perJob <= GOAL_BYTES, sampleJob: last, recordBytes: record, runsBytes: runs },
    };
  } finally {
    supervisor.stop();
  }
}

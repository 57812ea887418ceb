import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { DIST_DIR } from '../lib/util/paths.js';

// What every benchmark does with JobManager: start a supervisor (detached) with the given config,
// time `jobmanager queue --wait DIR` from the outside, read the Events stream for the pipeline's
// own span, stop the supervisor.

const CLI = join(DIST_DIR, 'bin', 'jobmanager.js');

export interface Timed {
  /** `queue --wait`, from the command's start to its exit (reading the files included). */
  endToEnd: number;
  /** First grant to the last state change. */
  pipeline: number;
  /** First job queued to the last state change. */
  queueToEnd: number;
}

export function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export async function timeQueueWait(dir: string, config: Record<string, unknown>, jobs: string): Promise<Timed> {
  const configFile = join(dir, 'jobmanager.yaml');
  writeFileSync(configFile, JSON.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env, JM_CONFIG: configFile };
  delete env.JM_REDIS_URL;
  delete env.JM_STATE_DIR;
  execFileSync(process.execPath, [CLI, 'start', '--detach'], { env, stdio: 'ignore' });
  try {
    const start = process.hrtime.bigint();
    const result = spawnSync(process.execPath, [CLI, 'queue', '--wait', jobs], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const endToEnd = seconds(start);
    if (result.status !== 0) throw new Error(`queue --wait exited ${result.status}`);
    const redis = new Redis({ path: join(String(config.StateDir), 'redis', 'redis.sock') });
    const events = await redis.xrange(`jm:{${String(config.Deployment ?? 'default')}}:Events`, '-', '+');
    redis.disconnect();
    const time = (id: string) => Number(id.split('-')[0]);
    const first = (state: string) => time(events.find(([, f]) => f[3] === state)![0]);
    const last = time(events[events.length - 1][0]);
    return { endToEnd, pipeline: (last - first('granted')) / 1000, queueToEnd: (last - first('queued')) / 1000 };
  } finally {
    execFileSync(process.execPath, [CLI, 'stop'], { env, stdio: 'ignore' });
  }
}

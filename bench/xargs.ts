import { spawnSync } from 'node:child_process';
import { seconds } from './stats.js';

// The reference for local jobs: xargs running the same command with the same parallelism, which
// pays one fork and exec per job and nothing else.

export function timeXargs(jobs: number, slots: number): number {
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', `seq ${jobs} | xargs -P${slots} -n1 true`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`xargs exited ${result.status}`);
  return seconds(start);
}

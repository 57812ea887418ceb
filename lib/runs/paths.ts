import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { INTERNAL_DIR } from '../runtime/layout.js';

// Where local runs live under the state directory, and the one place their directories are made.
//   jobs/<id>/          a job's working directory: job.log, step logs, .jm/ (job file, outputs)
//   runs/<epoch>.log    a local launcher's run log

export function jobDir(stateDir: string, jobId: string): string {
  return join(stateDir, 'jobs', jobId);
}

export function runsDir(stateDir: string): string {
  return join(stateDir, 'runs');
}

export function runLogPath(stateDir: string, epoch: string): string {
  return join(runsDir(stateDir), `${epoch}.log`);
}

/**
 * Makes a job's directory, its empty log and (with `internal`) its internal directory. The manager
 * calls it as it routes a local job, long before the job runs: made by the job's own process as it
 * starts, eight at a time, they cost each start more than the fork does (ext4 measured here). The
 * starter calls it again as it launches (a no-op then); the launcher, a process of its own, makes
 * the directory too if it is still missing, and records why when it cannot.
 */
export function prepareJobDir(stateDir: string, jobId: string, options: { internal?: boolean } = {}): string {
  const dir = jobDir(stateDir, jobId);
  mkdirSync(options.internal ? join(dir, INTERNAL_DIR) : dir, { recursive: true });
  closeSync(openSync(join(dir, 'job.log'), 'a'));
  return dir;
}

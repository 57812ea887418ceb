import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR } from '../util/paths.js';

// Where local jobs live under the state directory.
//   jobs/<id>/          a job's working directory: job.log, step logs, .jm/ (outputs)
//   runs/<epoch>.log    a launcher's run log

export const STEP_RUNNER = join(DIST_DIR, 'lib', 'runtime', 'step-runner.js');
export const THREAD_TASK = join(DIST_DIR, 'lib', 'backends', 'thread', 'thread-task.js');

export function jobDir(stateDir: string, jobId: string): string {
  return join(stateDir, 'jobs', jobId);
}

export function runLogPath(stateDir: string, epoch: string): string {
  return join(stateDir, 'runs', `${epoch}.log`);
}

/** Makes a job's directory and empty log ahead of its start; a failure is left to the launcher. */
export function prepareJobDir(stateDir: string, jobId: string): void {
  const dir = jobDir(stateDir, jobId);
  try {
    mkdirSync(dir, { recursive: true });
    closeSync(openSync(join(dir, 'job.log'), 'a'));
  } catch {
    // the launcher tries again, and records why it could not
  }
}

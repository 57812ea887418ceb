// Names inside a job's directory, shared by the supervisor and the step runner. This module
// imports nothing: it is part of the small runtime copied to remote hosts for Function steps.

/** The job's internal directory: job.json for Function steps, step outputs, status. */
export const INTERNAL_DIR = '.jm';

/** The Inputs value that passes the job's own definition (the old tool's `self.yaml`). */
export const SELF_YAML = 'self.yaml';

export function outputFile(step: number, kind: 'run' | 'function'): string {
  return `${INTERNAL_DIR}/out-${step}.${kind === 'run' ? 'txt' : 'json'}`;
}

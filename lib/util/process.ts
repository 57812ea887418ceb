import { readFileSync } from 'node:fs';

// Is a process (or, with a negative id, a process group) alive? EPERM means it exists but is
// someone else's. A zombie (exited, not yet reaped by its parent) counts as gone.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (pid < 0) return true;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc here: trust kill(0)
  }
}

/**
 * A pid that may be signalled as a job's process group: a whole number above 1. Anything else
 * (0, 1, -1, a pid read from a corrupt record) would reach more than one job: kill(-1) reaches
 * every process the supervisor may signal.
 */
export function isJobPid(pid: unknown): pid is number {
  return typeof pid === 'number' && Number.isInteger(pid) && pid > 1 && pid < 2 ** 22;
}

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

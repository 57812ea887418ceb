import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StateDirLockedError } from './errors.js';
import { processAlive } from './process.js';

// Two supervisors never share a state directory: StateDir/supervisor.pid is created exclusively
// and holds the owner's pid. A file left by a process that is gone is stale and taken over.

export function pidFile(stateDir: string): string {
  return join(stateDir, 'supervisor.pid');
}

/** The pid of the live supervisor that owns `stateDir`, or null. */
export function lockOwner(stateDir: string): number | null {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile(stateDir), 'utf8'), 10);
  } catch {
    return null;
  }
  if (!(pid > 0)) return null;
  return processAlive(pid) ? pid : null;
}

export function acquireStateLock(stateDir: string): void {
  const path = pidFile(stateDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = lockOwner(stateDir);
    if (owner !== null && owner !== process.pid) {
      throw new StateDirLockedError(`a supervisor (pid ${owner}) already runs with the state directory ${stateDir}; stop it with \`jobmanager stop\`, or give this one its own StateDir`);
    }
    try {
      unlinkSync(path); // stale: its owner is gone
    } catch {
      // another process took it over first
    }
  }
  throw new StateDirLockedError(`could not take the lock ${path}: other processes kept taking it over; make sure only one supervisor starts with the state directory ${stateDir}, then start again`);
}

export function releaseStateLock(stateDir: string): void {
  try {
    if (Number.parseInt(readFileSync(pidFile(stateDir), 'utf8'), 10) === process.pid) unlinkSync(pidFile(stateDir));
  } catch {
    // not ours, or gone
  }
}

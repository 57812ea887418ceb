import { readdirSync, readFileSync } from 'node:fs';
import { processAlive } from '../../lib/util/process.js';

// Finding the processes a spec left behind, by what they carry rather than by name: job processes
// carry JM_JOB_DIR in their environment, the sessions of a spec SSH host its SetEnv marker, so
// everything a spec started can be found and stopped by pid.

/** The processes whose environment has `name` set to a value starting with `prefix`. */
export function pidsWithEnv(name: string, prefix: string): number[] {
  const pids: number[] = [];
  for (const pid of allPids()) {
    if (environ(pid).some((kv) => kv.startsWith(`${name}=${prefix}`))) pids.push(pid);
  }
  return pids;
}

export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Alive and not a zombie waiting to be reaped. */
export function alive(pid: number): boolean {
  return processAlive(pid);
}

/**
 * SIGKILL, by pid, `root` and its descendants (for a spec SSH host: the per-connection sshd
 * processes and their sessions) and every process whose environment holds `marker` (`NAME=value`:
 * jobs that detached with setsid and were reparented). The tree is read in one snapshot before
 * anything dies; marked processes are looked for again until none is left, since a session may
 * fork while its siblings die.
 */
export function killProcessTree(root: number | undefined, marker: string): void {
  for (let round = 0; round < 20; round++) {
    const table = processTable();
    const doomed = new Set<number>();
    if (root !== undefined && round === 0) {
      if (table.has(root)) doomed.add(root);
      const queue = [root];
      while (queue.length > 0) {
        const parent = queue.pop()!;
        for (const [pid, ppid] of table) {
          if (ppid === parent && !doomed.has(pid)) {
            doomed.add(pid);
            queue.push(pid);
          }
        }
      }
    }
    for (const pid of table.keys()) {
      if (pid !== process.pid && environ(pid).includes(marker)) doomed.add(pid);
    }
    if (doomed.size === 0) return;
    killAll(doomed);
  }
}

/** pid → parent pid of every process but zombies (already dead: they cannot be killed again). */
function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const pid of allPids()) {
    try {
      // The command name (2nd field) is in parentheses and may hold spaces: read after it.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state, fields[1] the parent.
      if (fields[0] !== 'Z') table.set(pid, Number(fields[1]));
    } catch {
      // gone
    }
  }
  return table;
}

function allPids(): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number);
}

/** `NAME=value` entries of a process's environment; none for a process gone or not ours. */
function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

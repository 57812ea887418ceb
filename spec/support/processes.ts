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
      for (const pid of descendantsOf(root, table)) doomed.add(pid);
    }
    for (const pid of table.keys()) {
      if (pid !== process.pid && environ(pid).includes(marker)) doomed.add(pid);
    }
    if (doomed.size === 0) return;
    killAll(doomed);
  }
}

/**
 * SIGKILL of `root` and all its descendants, none missed: each is stopped (SIGSTOP) as it is
 * found, and a stopped process forks no more, so the tree is read again until it holds no
 * process not yet stopped; then all die at once. A kill from one reading of the tree missed a
 * child forked just after it: sshd's connection in the making at that moment lived on,
 * reparented, and kept a host that a spec had cut off reachable (fencing spec, under load).
 * Only the processes of the tree that `only` accepts are killed; the rest are looked through.
 */
export function killTree(root: number, only: (pid: number) => boolean): void {
  const stopped = new Set<number>();
  for (let round = 0; round < 50; round++) {
    const table = processTable();
    const found = [root, ...descendantsOf(root, table)].filter((pid) => table.has(pid) && !stopped.has(pid) && only(pid));
    if (found.length === 0) break;
    for (const pid of found) {
      try {
        process.kill(pid, 'SIGSTOP');
      } catch {
        // already gone
      }
      stopped.add(pid);
    }
  }
  killAll(stopped);
}

/** Every process below `root` in `table` (pid → parent pid). */
function descendantsOf(root: number, table: Map<number, number>): number[] {
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.pop()!;
    for (const [pid, ppid] of table) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
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

/** A process's command name (its executable's, as ps shows it); '' for one gone. */
export function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
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

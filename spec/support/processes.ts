import { readdirSync, readFileSync } from 'node:fs';
import { processAlive } from '../../lib/util/process.js';

// Finding the processes a spec left behind: job processes carry JM_JOB_DIR in their environment,
// so everything started under a workspace's state directory can be found and stopped by pid.

export function pidsWithEnv(name: string, prefix: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.some((kv) => kv.startsWith(`${name}=${prefix}`))) pids.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

export function killAll(pids: number[]): void {
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

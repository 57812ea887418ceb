// The launcher's posix_spawn (native/spawn.c), when it was built at install; null otherwise, or
// when JM_LAUNCHER_SPAWN=node asks for node's own spawn (the specs run the launcher both ways).
// Node built-ins only: the launcher imports this file.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../util/paths.js';

export interface NativeSpawn {
  /** Starts `file` in its own session, stdin /dev/null, stdout and stderr `outFd`: its pid, or -errno. */
  spawn(file: string, argv: string[], envp: string[], cwd: string, outFd: number): number;
  /** Every child that has ended, as [pid, wait status, pid, wait status, ...]. */
  reap(): number[];
}

/** Where npm install builds the addon. */
export const NATIVE_SPAWN_ADDON = join(PROJECT_ROOT, 'native', 'build', 'Release', 'jm_spawn.node');

function load(): NativeSpawn | null {
  if (process.env.JM_LAUNCHER_SPAWN === 'node') return null;
  try {
    return createRequire(import.meta.url)(NATIVE_SPAWN_ADDON) as NativeSpawn;
  } catch {
    return null; // not built (no compiler at install): node's spawn does the same, for more CPU
  }
}

export const nativeSpawn = load();

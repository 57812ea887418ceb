import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';

// Compiled files live in dist/<same path>; data files (Lua scripts, spawner.py, config
// defaults) stay in the source tree, so paths are resolved from the project root.
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const LUA_DIR = join(PROJECT_ROOT, 'lib', 'store', 'lua');
export const SPAWNER_FILE = join(PROJECT_ROOT, 'lib', 'backends', 'remote', 'spawner.py');
export const DEFAULT_CONFIG_FILE = join(PROJECT_ROOT, 'config', 'default.yaml');
export const DIST_DIR = join(PROJECT_ROOT, 'dist');

export function expandHome(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? join(homedir(), path.slice(2)) : path;
}

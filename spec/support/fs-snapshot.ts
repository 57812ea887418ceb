import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// What a directory tree holds, to compare before and after hostile input ran: each path with its
// type, size and modification time (symbolic links are recorded, never followed). Used to prove
// that nothing was written outside the places a job may write, here and (through `find`) on an
// SSH host.

export interface Entry {
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  mtimeMs: number;
}

export type Snapshot = Map<string, Entry>;

export function snapshot(root: string): Snapshot {
  const out: Snapshot = new Map();
  const visit = (path: string) => {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return; // gone meanwhile
    }
    const type = stat.isSymbolicLink() ? 'link' : stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other';
    out.set(path, { type, size: stat.size, mtimeMs: stat.mtimeMs });
    if (type !== 'dir') return;
    let names: string[] = [];
    try {
      names = readdirSync(path);
    } catch {
      return; // not ours to read
    }
    for (const name of names) visit(join(path, name));
  };
  visit(root);
  return out;
}

/**
 * `find DIR -printf '%y %s %T@ %p\0'` output as a Snapshot (paths may hold any character but
 * NUL, so entries are NUL-separated).
 */
export function parseFind(output: string): Snapshot {
  const out: Snapshot = new Map();
  for (const record of output.split('\0')) {
    const match = /^(\S) (\d+) ([\d.]+) ([\s\S]*)$/.exec(record);
    if (!match) continue;
    const type = match[1] === 'f' ? 'file' : match[1] === 'd' ? 'dir' : match[1] === 'l' ? 'link' : 'other';
    out.set(match[4], { type, size: Number(match[2]), mtimeMs: Number(match[3]) * 1000 });
  }
  return out;
}

export interface Changes {
  added: string[];
  changed: string[];
  removed: string[];
}

/** Paths added or removed, and files (not directories: adding an entry touches those) changed. */
export function compare(before: Snapshot, after: Snapshot): Changes {
  const changes: Changes = { added: [], changed: [], removed: [] };
  for (const [path, entry] of after) {
    const old = before.get(path);
    if (!old) changes.added.push(path);
    else if (entry.type !== old.type || (entry.type !== 'dir' && (entry.size !== old.size || entry.mtimeMs !== old.mtimeMs))) changes.changed.push(path);
  }
  for (const path of before.keys()) if (!after.has(path)) changes.removed.push(path);
  return changes;
}

/** Paths of `changes` that `allowed` does not cover. */
export function outside(changes: Changes, allowed: (path: string) => boolean): string[] {
  return [...changes.added, ...changes.changed, ...changes.removed].filter((path) => !allowed(path));
}

/** Entries under `dir` (at most `depth` levels down) whose name matches `pattern`. */
export function findNamed(dir: string, pattern: RegExp, depth = Infinity): string[] {
  const found: string[] = [];
  const visit = (path: string, level: number) => {
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) {
      const child = join(path, name);
      if (pattern.test(name)) found.push(child);
      if (level < depth) {
        try {
          if (lstatSync(child).isDirectory()) visit(child, level + 1);
        } catch {
          // gone
        }
      }
    }
  };
  visit(dir, 1);
  return found;
}

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// Copying files to and from a host. SFTP is the fast path (sftp-files.ts); a host whose sshd
// refuses the SFTP subsystem (Dropbear without sftp-server, hardened configurations) gets the
// same files over exec channels instead (exec-files.ts): same paths, same bytes, same errors.
// Which one a connection uses is decided once, the first time it needs files
// (SshConnection.files()). A job that needs no files never asks, so it never touches SFTP.
//
// Paths on the host are absolute (SFTP does not expand ~: callers resolve it against $HOME).
// Failures the host reports about a file (missing, not allowed, a size that does not match)
// come back as RemoteFileError; a connection that breaks, as the connection's own error.

export type TransferKind = 'sftp' | 'exec';

/** What is copied to a host: a local file, or bytes made here (a job file, a manifest). */
export type Source = { path: string } | { data: Buffer | string };

export interface RemoteFiles {
  readonly kind: TransferKind;
  /** Writes `source` to `remote` (its directory must exist). */
  put(source: Source, remote: string): Promise<void>;
  /** Copies the regular file `remote` into `local` (whose directory must exist). */
  get(remote: string, local: string): Promise<void>;
}

/** Files copied at once on one connection (each holds a channel, or SFTP requests, in flight). */
export const PARALLEL_FILES = 3;

/** A local file or directory tree, as the directories to make and the files to copy, relative to its root. */
export function walkTree(local: string): { dirs: string[]; files: string[] } {
  if (!statSync(local).isDirectory()) return { dirs: [], files: [''] };
  const dirs: string[] = [''];
  const files: string[] = [];
  const visit = (relative: string) => {
    for (const entry of readdirSync(join(local, relative))) {
      const path = relative ? `${relative}/${entry}` : entry;
      if (statSync(join(local, path)).isDirectory()) {
        dirs.push(path);
        visit(path);
      } else {
        files.push(path);
      }
    }
  };
  visit('');
  return { dirs, files };
}

/** Runs `work` over `items`, at most `limit` at a time; the first failure is thrown once all have settled. */
export async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const lane = async () => {
    while (next < items.length && !failure) {
      const item = items[next++];
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw (failure as { err: unknown }).err;
}

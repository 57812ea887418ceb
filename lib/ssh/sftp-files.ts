import { renameSync, rmSync } from 'node:fs';
import type { SFTPWrapper } from 'ssh2';
import { errorMessage } from '../util/errors.js';
import { RemoteFileError } from './errors.js';
import type { RemoteFiles, Source } from './remote-files.js';

// Files over the host's SFTP subsystem (the fast path; see remote-files.ts). A download goes to
// a part file renamed into place, so a broken one never leaves half a file under the real name.

/** SFTP status codes (draft-ietf-secsh-filexfer-02, 7): what the host said about the file. */
const STATUS_TEXT: Record<number, string> = { 2: 'No such file', 3: 'Permission denied', 4: 'Failure' };

export class SftpFiles implements RemoteFiles {
  readonly kind = 'sftp' as const;

  constructor(private readonly sftp: SFTPWrapper) {}

  put(source: Source, remote: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null | undefined) => (err ? reject(fileError(err, `writing ${remote}`)) : resolve());
      if ('path' in source) this.sftp.fastPut(source.path, remote, done);
      else this.sftp.writeFile(remote, source.data, done);
    });
  }

  async get(remote: string, local: string): Promise<void> {
    const part = `${local}.jm-part`;
    try {
      await new Promise<void>((resolve, reject) => this.sftp.fastGet(remote, part, (err) => (err ? reject(fileError(err, null)) : resolve())));
      renameSync(part, local);
    } finally {
      rmSync(part, { force: true });
    }
  }
}

/** An answer of the host about the file is the file's problem; anything else (a closed channel) is the connection's. */
function fileError(err: Error, what: string | null): Error {
  const status = (err as Error & { code?: unknown }).code;
  const prefix = what ? `${what}: ` : '';
  if (typeof status === 'number') return new RemoteFileError(`${prefix}${STATUS_TEXT[status] ?? errorMessage(err)}`, { cause: err });
  // A local file's problem (ENOENT, ENOSPC): the message names it.
  if (typeof status === 'string' && status.startsWith('E')) return new RemoteFileError(errorMessage(err), { cause: err });
  return err;
}

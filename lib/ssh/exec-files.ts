import { createReadStream, createWriteStream, openSync, closeSync, fstatSync, renameSync, rmSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ClientChannel } from 'ssh2';
import { errorMessage } from '../util/errors.js';
import { shq } from '../util/shell.js';
import { RemoteFileError } from './errors.js';
import type { RemoteFiles, Source } from './remote-files.js';

// Files over exec channels, for hosts without SFTP (see remote-files.ts). One channel per file:
// its bytes are the channel's standard input (upload) or output (download), raw, so any content
// and any size goes through. Only POSIX sh, cat, wc and mv are needed on the host (tar is not
// POSIX, and `head -c` is not either; a shell reading its script from the same pipe as the data
// reads ahead and swallows the data, so the script is the command line, `sh -c`).
//
// Sizes are checked at both ends: an upload names its size, the host compares what it received
// before renaming the part file into place; a download starts with the file's size, and what
// arrives is compared with it before the local part file is renamed. A channel that closes
// without an exit status is a broken connection (the caller's to retry), not a file problem.

/** $1 path, $2 size: the bytes on standard input become the file, whole or not at all. */
const PUT = [
  't="$1.jm-part.$$"',
  'cat >"$t" || { rm -f "$t"; exit 1; }',
  'n=$(wc -c <"$t")',
  // Unquoted: BSD wc pads the count with spaces.
  'if [ $n -ne "$2" ]; then rm -f "$t"; echo "received $n of $2 bytes" >&2; exit 3; fi',
  'mv -f "$t" "$1"',
].join('\n');

/** $1 path: its size on a line of its own, then its bytes. */
const GET = [
  'if [ ! -e "$1" ]; then echo "No such file" >&2; exit 2; fi',
  'if [ ! -f "$1" ]; then echo "Not a regular file" >&2; exit 2; fi',
  'if [ ! -r "$1" ]; then echo "Permission denied" >&2; exit 2; fi',
  'n=$(wc -c <"$1") || exit 2',
  'echo $n',
  'exec cat "$1"',
].join('\n');

/** How an exec channel is had: one of its own, from the connection's slots. */
export type ExecChannel = <T>(command: string, use: (channel: ClientChannel) => Promise<T>) => Promise<T>;

export class ExecFiles implements RemoteFiles {
  readonly kind = 'exec' as const;

  constructor(private readonly withExec: ExecChannel) {}

  async put(source: Source, remote: string): Promise<void> {
    // The size is taken from the open file, and exactly that many bytes are sent: a file that
    // grows meanwhile is sent as it was when opened; one that shrinks fails the check.
    const fd = 'path' in source ? openLocal(source.path) : null;
    const data = 'data' in source ? Buffer.from(source.data) : null;
    const size = fd !== null ? fstatSync(fd).size : data!.length;
    /** Once a read stream has the file, it closes it (destroy() closes it whatever autoClose says). */
    let streamOwnsFd = false;
    try {
      await this.withExec(`sh -c ${shq(PUT)} sh ${shq(remote)} ${size}`, async (channel) => {
        const status = exitStatus(channel);
        const input = fd !== null && size > 0 ? createReadStream('', { fd, start: 0, end: size - 1 }) : null;
        streamOwnsFd = input !== null;
        channel.resume(); // nothing comes on stdout, but its end must be read for the channel to close
        if (input) {
          input.on('error', () => channel.close());
          input.pipe(channel);
        } else {
          channel.end(data ?? undefined);
        }
        // A host that stopped reading early (no room, say) leaves the file half read: stop reading it.
        const { code, stderr } = await status.finally(() => input?.destroy());
        if (code !== 0) throw new RemoteFileError(`writing ${remote}: ${stderr || `exit code ${code}`}`);
      });
    } finally {
      if (fd !== null && !streamOwnsFd) closeSync(fd);
    }
  }

  async get(remote: string, local: string): Promise<void> {
    const part = `${local}.jm-part`;
    try {
      await this.withExec(`sh -c ${shq(GET)} sh ${shq(remote)}`, async (channel) => {
        const status = exitStatus(channel);
        const body = new SizedBody();
        const copied = pipeline(channel, body, createWriteStream(part)).then(() => null, (err: Error) => err);
        const [{ code, stderr }, copyError] = await Promise.all([status, copied]);
        if (code !== 0) throw new RemoteFileError(stderr || `exit code ${code}`);
        if (copyError) throw copyError instanceof RemoteFileError ? copyError : new RemoteFileError(`writing ${local}: ${errorMessage(copyError)}`, { cause: copyError });
        if (body.expected === null || body.received !== body.expected) {
          throw new RemoteFileError(`received ${body.received} of ${body.expected ?? 'an unknown number of'} bytes`);
        }
      });
      renameSync(part, local);
    } finally {
      rmSync(part, { force: true });
    }
  }
}

function openLocal(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new RemoteFileError(`reading ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/**
 * The channel's exit status and what it wrote on stderr, once it closes. No exit status and
 * nothing on stderr means the channel (or the connection under it) broke: a plain error, for the
 * caller to treat as "host unavailable".
 */
function exitStatus(channel: ClientChannel): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const err: Buffer[] = [];
    let code: number | null = null;
    channel.stderr.on('data', (d: Buffer) => err.push(d));
    channel.on('exit', (c: number | null) => {
      code = c;
    });
    channel.on('error', () => {}); // a write after the far end closed: the status tells what happened
    channel.once('close', () => {
      const stderr = Buffer.concat(err).toString('utf8').trim().slice(0, 500);
      // Seen here: a host whose command failed at once (no such directory) while a large upload
      // was still being sent sometimes closed the channel without an exit status; what it said
      // on stderr is then its answer about the file.
      if (code === null && !stderr) reject(new Error('the channel closed before the command ended'));
      else resolve({ code, stderr });
    });
  });
}

/** Takes the size line off the front of a download and counts the bytes after it. */
class SizedBody extends Transform {
  expected: number | null = null;
  received = 0;
  private head: Buffer = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.expected === null) {
      this.head = Buffer.concat([this.head, chunk]);
      const eol = this.head.indexOf(10);
      if (eol < 0) {
        if (this.head.length > 64) return done(new RemoteFileError('the host sent no size line before the file'));
        return done();
      }
      const size = Number(this.head.subarray(0, eol).toString('ascii').trim());
      if (!Number.isSafeInteger(size) || size < 0) return done(new RemoteFileError('the host sent no size line before the file'));
      this.expected = size;
      chunk = this.head.subarray(eol + 1);
      this.head = Buffer.alloc(0);
    }
    this.received += chunk.length;
    done(null, chunk);
  }
}

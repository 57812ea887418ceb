import { existsSync, renameSync, statSync } from 'node:fs';
import type { DestinationStream } from 'pino';

// supervisor.log rotated by size, keeping a few files, logrotate's way:
//
//   supervisor.log ─(reaches LogSize)─▶ supervisor.log.1 ─▶ supervisor.log.2 ─▶ … ─▶ .N (dropped after)
//
// The writer stays pino's own file destination (SonicBoom, synchronous: a line is on disk when
// write() returns, so a kill -9 loses none of the lines before it); at the size limit the files
// are renamed one step along and SonicBoom.reopen() opens a new supervisor.log, the hook pino
// documents for rotation. Why not a package that rotates by itself: pino-roll writes to numbered
// files (supervisor.1.log, .2.log …), so the live log would change its name (`start` prints it,
// people `tail -F` it); rotating-file-stream is an asynchronous Writable, whose queued lines a
// kill -9 of the supervisor would lose, and the chaos runs read exactly those lines.
//
// Readers that want the whole story read supervisor.log.N … supervisor.log.1, then
// supervisor.log (spec/support/supervisor-log.ts does). Only the supervisor writes the file.

export interface LogRotation {
  /** Rotate when the file would pass this many bytes. */
  maxBytes: number;
  /** Rotated files kept: <file>.1 (newest) … <file>.<keep>. */
  keep: number;
}

/** The rotated files of `file`, oldest first, then `file` itself: those that exist. */
export function logFilesInOrder(file: string, keep = 100): string[] {
  const rotated: string[] = [];
  for (let i = 1; i <= keep && existsSync(`${file}.${i}`); i++) rotated.unshift(`${file}.${i}`);
  return existsSync(file) ? [...rotated, file] : rotated;
}

/** What this file needs of pino's file destination (a SonicBoom). */
export interface ReopenableFile {
  write(line: string): boolean;
  reopen(file?: string): void;
  flushSync(): void;
  end(): void;
}

export class RotatingDestination implements DestinationStream {
  private bytes: number;

  constructor(
    private readonly file: string,
    private readonly boom: ReopenableFile,
    private readonly rotation: LogRotation,
  ) {
    this.bytes = existsSync(file) ? statSync(file).size : 0;
  }

  write(line: string): void {
    const size = Buffer.byteLength(line);
    if (this.bytes > 0 && this.bytes + size > this.rotation.maxBytes) this.rotate();
    this.boom.write(line);
    this.bytes += size;
  }

  private rotate(): void {
    try {
      for (let i = this.rotation.keep - 1; i >= 1; i--) {
        if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      }
      renameSync(this.file, `${this.file}.1`);
      this.boom.reopen();
    } catch {
      // A file that cannot be renamed (removed by hand, a read-only directory): the log goes on
      // in the file it has, and rotation is tried again at the next line past the limit.
    }
    this.bytes = existsSync(this.file) ? statSync(this.file).size : 0;
  }

  flushSync(): void {
    this.boom.flushSync();
  }

  end(): void {
    this.boom.end();
  }
}

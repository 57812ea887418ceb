import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { JobRecord } from '../store/job-record.js';
import { jobDir } from '../runs/paths.js';
import { HostRegistry } from '../ssh/hosts.js';
import { SshPool } from '../ssh/pool.js';
import { remoteJobDir } from '../backends/remote/paths.js';
import { specOfRecord } from '../jobfile/record-spec.js';
import { shellPath } from '../util/shell.js';
import { silentLogger, type Logger } from '../util/log.js';

// A job's log, wherever it is written: StateDir/jobs/<id>/<name> for Local and Thread jobs, the
// same name in the job's directory on its host for Remote and EC2 jobs (read over SSH, followed
// with `tail -F`). `jobmanager logs` and the web page (lib/web/log-stream.ts) both read logs here.
//
// Following never decides by itself that a log is complete: the caller knows when the job has
// ended (its state, an Events entry) and calls finish(), which delivers what is left.

export type LogPlace =
  | { kind: 'local'; dir: string; file: string }
  | { kind: 'remote'; host: string; path: string };

/** Read at most this much at once from a local file. */
const CHUNK = 1 << 20;
/** fs.watch can miss a change (some filesystems, a directory made late): look anyway this often. */
const LOCAL_RECHECK_MS = 1000;

export class JobLogs {
  private hosts: HostRegistry | null = null;
  private pool: SshPool | null = null;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger = silentLogger,
  ) {}

  /** Where the job's log (or a step's own Log file, `name`) is. */
  async place(record: JobRecord, name = 'job.log'): Promise<LogPlace> {
    if (record.host?.startsWith('host:')) {
      const host = record.host.slice(5);
      const dir = remoteJobDir({ deployment: this.config.deployment, storeId: await this.store.storeId() }, host, record.id, specOfRecord(record));
      return { kind: 'remote', host, path: `${dir}/${name}` };
    }
    const dir = jobDir(this.config.stateDir, record.id);
    return { kind: 'local', dir, file: join(dir, name) };
  }

  /** The log as it is now; null when there is none (yet). SSH failures are thrown. */
  async read(place: LogPlace): Promise<Buffer | null> {
    if (place.kind === 'local') {
      if (!existsSync(place.file)) return null;
      const chunks: Buffer[] = [];
      readFrom(place.file, 0, (chunk) => chunks.push(chunk));
      return Buffer.concat(chunks);
    }
    const result = await (await this.ssh(place.host)).exec(`cat ${shellPath(place.path)} 2>/dev/null`);
    return result.code === 0 ? Buffer.from(result.stdout) : null;
  }

  /**
   * Follows the log from its start (or from `lastBytes` before its end), passing each new piece
   * to `onData` as it is written. start() resolves once following has begun.
   */
  follow(place: LogPlace, onData: (chunk: Buffer) => void, lastBytes: number | null = null): LogFollower {
    return place.kind === 'local' ? new LocalFollower(place, onData, lastBytes) : new RemoteFollower(place, onData, lastBytes, () => this.ssh(place.host));
  }

  /** Closes the SSH connections it made. */
  close(): void {
    this.pool?.closeAll();
  }

  private async ssh(host: string) {
    if (!this.hosts) {
      this.hosts = new HostRegistry(this.config, this.store);
      this.pool = new SshPool(this.hosts, this.config, this.log);
    }
    // A host registered since the last look (an EC2 instance, a host named in a job file).
    if (!this.hosts.get(host)) await this.hosts.refresh(true);
    return this.pool!.connection(host);
  }
}

export interface LogFollower {
  /** Bytes left out at the start (see `lastBytes`). */
  readonly skipped: number;
  start(): Promise<void>;
  /** The job has ended: delivers the rest of the log, then stops. */
  finish(): Promise<void>;
  /** Stops at once (the reader went away). Idempotent. */
  close(): void;
}

/** Reads `file` from `offset` to its current end; returns the new offset. */
function readFrom(file: string, offset: number, onData: (chunk: Buffer) => void): number {
  if (!existsSync(file)) return offset;
  const size = statSync(file).size;
  if (size <= offset) return offset;
  const fd = openSync(file, 'r');
  try {
    while (offset < size) {
      const buffer = Buffer.alloc(Math.min(size - offset, CHUNK));
      const n = readSync(fd, buffer, 0, buffer.length, offset);
      if (n === 0) break;
      offset += n;
      onData(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return offset;
}

class LocalFollower implements LogFollower {
  skipped = 0;
  private offset = 0;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly place: Extract<LogPlace, { kind: 'local' }>,
    private readonly onData: (chunk: Buffer) => void,
    private readonly lastBytes: number | null,
  ) {}

  async start(): Promise<void> {
    if (this.lastBytes !== null && existsSync(this.place.file)) {
      this.offset = this.skipped = Math.max(0, statSync(this.place.file).size - this.lastBytes);
    }
    mkdirSync(this.place.dir, { recursive: true });
    this.watcher = watch(this.place.dir, () => this.drain());
    this.watcher.on('error', () => {}); // the directory went away (purged): the timer still looks
    this.timer = setInterval(() => this.drain(), LOCAL_RECHECK_MS);
    this.timer.unref();
    this.drain();
  }

  private drain(): void {
    if (this.closed) return;
    try {
      this.offset = readFrom(this.place.file, this.offset, this.onData);
    } catch {
      // removed or unreadable now; the next look tries again
    }
  }

  async finish(): Promise<void> {
    this.drain();
    this.close();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }
}

class RemoteFollower implements LogFollower {
  skipped = 0;
  private received = 0;
  private stream: { close(): void; ended: Promise<void> } | null = null;
  private closed = false;

  constructor(
    private readonly place: Extract<LogPlace, { kind: 'remote' }>,
    private readonly onData: (chunk: Buffer) => void,
    private readonly lastBytes: number | null,
    private readonly ssh: () => ReturnType<JobLogs['ssh']>,
  ) {}

  async start(): Promise<void> {
    const ssh = await this.ssh();
    const path = shellPath(this.place.path);
    if (this.lastBytes !== null) {
      const size = Number((await ssh.exec(`wc -c < ${path} 2>/dev/null || echo 0`)).stdout.trim()) || 0;
      this.skipped = Math.max(0, size - this.lastBytes);
    }
    if (this.closed) return;
    // -F: the file may not exist yet (the job has not started on the host) or be replaced.
    this.stream = await ssh.stream(`exec tail -c +${this.skipped + 1} -F ${path} 2>/dev/null`, (chunk) => {
      this.received += chunk.length;
      if (!this.closed) this.onData(chunk);
    });
    if (this.closed) this.stream.close();
  }

  async finish(): Promise<void> {
    if (this.closed) return;
    this.stream?.close();
    await this.stream?.ended;
    // The job has ended, so its log is complete: what the stream had not brought yet.
    const rest = await (await this.ssh()).exec(`tail -c +${this.skipped + this.received + 1} ${shellPath(this.place.path)} 2>/dev/null`);
    if (!this.closed && rest.stdout.length) this.onData(Buffer.from(rest.stdout));
    this.closed = true;
  }

  close(): void {
    this.closed = true;
    this.stream?.close();
  }
}

import { StringDecoder } from 'node:string_decoder';
import type { Store } from '../store/store.js';
import { isFinal, type JobRecord } from '../store/job-record.js';
import type { JobLogs, LogFollower } from '../logs/job-log.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { EventBatch, EventHub } from './event-hub.js';
import type { SseStream } from './sse.js';
import { jobDetail } from './views.js';

// One browser's view of one job, live: the job's details when they change, and its log as it is
// written (lib/logs/job-log.ts: the local file, or `tail -F` over SSH for Remote and EC2 jobs).
// Changes come from the hub (the job's Events entries); steps move without an entry, so the
// details are also re-read after log output (at most every second) and every 5 s while it runs.
// A Remote or EC2 job that has no host yet gets its log followed once an entry says where it is.
// A job that ended stays watched: retried, it runs again, and its new output follows.

/** The page shows at most the last this many bytes of a log at first (`jobmanager logs` has all). */
export const LOG_TAIL_BYTES = 512 * 1024;
const REFRESH_MS = 5000;
const AFTER_OUTPUT_MS = 1000;

export class JobStream {
  private follower: LogFollower | null = null;
  private readonly decoder = new StringDecoder('utf8');
  private ended = false;
  /** Following a run after a retry: from the log's end, not its start. */
  private rerun = false;
  private lastRead = 0;
  private reading: Promise<void> | null = null;
  private timer: NodeJS.Timeout;
  private readonly onBatch = (batch: EventBatch) => {
    if (batch.changes.has(this.id)) void this.refresh();
  };

  constructor(
    private readonly id: string,
    private readonly sse: SseStream,
    private readonly store: Store,
    private readonly logs: JobLogs,
    private readonly hub: EventHub,
    private readonly csrf: string,
    private readonly log: Logger,
  ) {
    hub.on('batch', this.onBatch);
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
    sse.onClose(() => this.close());
  }

  /** Sends the details and starts the log. */
  async start(): Promise<void> {
    await this.refresh();
  }

  /** Re-reads the job (one read at a time); follows its log once it is known where it is. */
  private refresh(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = null));
    return this.reading;
  }

  private async read(): Promise<void> {
    if (!this.sse.open) return;
    this.lastRead = Date.now();
    try {
      const [job, runs] = await Promise.all([this.store.getJob(this.id), this.store.runsOf(this.id)]);
      if (!job || !this.sse.open) return;
      this.sse.send('job', { state: job.state, html: jobDetail(job, runs, this.csrf).text });
      if (this.ended && !isFinal(job.state)) this.again();
      const remote = job.classType === 'Remote' || job.classType === 'EC2';
      if (!this.follower && !this.ended && (!remote || job.host || isFinal(job.state))) await this.follow(job);
      if (isFinal(job.state) && !this.ended) {
        this.ended = true;
        clearInterval(this.timer);
        await this.follower?.finish();
        this.sse.send('log-end', { state: job.state });
      }
    } catch (err) {
      this.sse.send('log-error', { message: `cannot read the log: ${errorMessage(err)}` });
      this.log.debug(`web: job ${this.id}: ${errorMessage(err)}`);
    }
  }

  /** The job ended and was retried: its next run's output follows what the page shows already. */
  private again(): void {
    this.ended = false;
    this.follower?.close();
    this.follower = null;
    this.rerun = true;
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
    this.sse.send('log-again', {});
  }

  private async follow(job: JobRecord): Promise<void> {
    const place = await this.logs.place(job);
    this.follower = this.logs.follow(place, (chunk) => this.output(chunk), this.rerun ? 0 : LOG_TAIL_BYTES);
    await this.follower.start();
    if (this.follower.skipped > 0 && !this.rerun) this.sse.send('log-skipped', { bytes: this.follower.skipped });
  }

  private output(chunk: Buffer): void {
    const text = visible(this.decoder.write(chunk));
    if (text) this.sse.send('log', text);
    if (!this.ended && Date.now() - this.lastRead > AFTER_OUTPUT_MS) void this.refresh();
  }

  close(): void {
    this.hub.off('batch', this.onBatch);
    clearInterval(this.timer);
    this.follower?.close();
  }
}

/**
 * Log text fit for the page: line breaks kept, terminal colour and cursor sequences (CSI) left
 * out, other control characters shown as \uXXXX.
 */
export function visible(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/\u001b\[[0-9;?]*[ -\/]*[@-~]/g, '')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

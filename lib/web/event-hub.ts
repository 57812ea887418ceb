import { EventEmitter } from 'eventemitter3';
import type { Store, JobEvent } from '../store/store.js';
import type { BlockingConnection } from '../store/blocking.js';
import type { JobRecord } from '../store/job-record.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { StopSignal } from '../util/stop-signal.js';
import { ROW_FIELDS, rowsFrom } from './job-filter.js';

// One reader of the Events stream for the whole web server, however many browsers watch:
//
//   Redis Events ──XREAD (own connection)──> EventHub ──'batch'──> every jobs list (SSE)
//                                              │   one read of      every job page (SSE)
//                                              │   the changed      the metrics (tally, histograms)
//                                              └── rows per batch
//
// Each batch of entries is followed by one read of the changed jobs' rows (ROW_FIELDS), shared by
// all listeners: a browser costs its own rendering and socket, never a Redis poll of its own.

export interface EventBatch {
  events: JobEvent[];
  /** The changed jobs as they are now (null: the record is gone). */
  rows: Map<string, JobRecord | null>;
}

interface HubEvents {
  batch: (batch: EventBatch) => void;
}

const READ_COUNT = 2000;
const BLOCK_MS = 5000;

export class EventHub extends EventEmitter<HubEvents> {
  private readonly reader: BlockingConnection;
  private readonly stop$ = new StopSignal();
  private loop: Promise<void> | null = null;
  private failing = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    super();
    this.reader = store.blocking(log);
  }

  /** Starts reading at the newest entry: what happened before is in the records already. */
  async start(): Promise<void> {
    const from = await this.store.lastEventId();
    this.loop = this.run(from);
  }

  private async run(from: string): Promise<void> {
    let lastId = from;
    while (!this.stop$.stopped) {
      let read;
      try {
        read = await this.reader.readEvents(lastId, READ_COUNT, BLOCK_MS, READ_COUNT);
      } catch (err) {
        // Redis refused the read (a lost connection reads as no events): said once, then retried slowly.
        if (this.stop$.stopped) break;
        if (!this.failing) this.log.warn(`web: cannot read the Events stream: ${errorMessage(err)}; live updates wait until it can`);
        this.failing = true;
        await this.stop$.sleep(2000);
        continue;
      }
      this.failing = false;
      lastId = read.lastId;
      if (read.events.length === 0 || this.stop$.stopped) continue;
      try {
        // A slice at a time: one entry of the stream may stand for a whole batch of a sweep's
        // jobs (lib/store/events.ts), and a read of 2,000 entries for 100,000 jobs.
        for (let at = 0; at < read.events.length && !this.stop$.stopped; at += READ_COUNT) {
          const events = read.events.slice(at, at + READ_COUNT);
          const ids = [...new Set(events.map((e) => e.job))];
          const rows = rowsFrom(await this.store.getFields(ids, ROW_FIELDS));
          this.emit('batch', { events, rows: new Map(ids.map((id, i) => [id, rows[i]])) });
        }
      } catch (err) {
        // Redis went away between the two reads: the next batch brings the jobs up to date.
        if (!this.stop$.stopped) this.log.warn(`web: could not read changed jobs: ${errorMessage(err)}`);
      }
    }
  }

  async close(): Promise<void> {
    this.stop$.stop();
    this.reader.close();
    await this.loop;
    this.removeAllListeners();
  }
}

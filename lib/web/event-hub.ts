import { EventEmitter } from 'eventemitter3';
import type { Store, JobEvent } from '../store/store.js';
import type { BlockingConnection } from '../store/blocking.js';
import { isFinal, type JobRecord } from '../store/job-record.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { StopSignal } from '../util/stop-signal.js';
import { ROW_FIELDS, rowsFrom } from './job-filter.js';

// One reader of the Events stream for the whole web server, however many browsers watch:
//
//   Redis Events ──XREAD (own connection)──> EventHub ──'batch'──> every jobs list (SSE)
//                                              │   reads only the    every job page (SSE)
//                                              │   rows someone      the metrics (tally, histograms)
//                                              └── needs
//
// Each batch of entries is followed by one read of what its listeners need, shared by all of
// them: a browser costs its own rendering and socket, never a Redis poll of its own. Every
// changed job's row is read only while a jobs list is open (followRows); otherwise only the rows
// of runs that started or ended (the histograms need their times) and each job's ClassType (the
// tally): 100,000 jobs of a sweep queued cost one read of one field per stream entry, not
// 100,000 rows held at once by the supervisor.

export interface JobChange {
  state: string;
  classType: string;
}

export interface EventBatch {
  events: JobEvent[];
  /** Each changed job's state after this batch and its class (null: the record is gone). */
  changes: Map<string, JobChange | null>;
  /**
   * Changed jobs' rows as they are now (null: the record is gone): every changed job's while a
   * jobs list follows them, else only those of runs that started or ended (needsRow).
   */
  rows: Map<string, JobRecord | null>;
}

interface HubEvents {
  batch: (batch: EventBatch) => void;
}

const READ_COUNT = 2000;
const BLOCK_MS = 5000;
/**
 * After a read that found events, the next one waits until this long after it: a busy stream
 * (thousands of short jobs a second, three events each) is then read in batches, each job's row
 * once per batch, rather than one read and one row per event. Live pages lag by at most this.
 */
const READ_GAP_MS = 100;

/** Whether the event is the end of a run: final (a rejected job never ran), or queued again after a run (a retry). */
export function endsRun(event: JobEvent): boolean {
  return (isFinal(event.state) && event.state !== 'rejected') || (event.state === 'queued' && event.run !== null);
}

/** Whether the metrics need this event's row: the wait of a first run that started, the length of a run that ended. */
export function needsRow(event: JobEvent): boolean {
  // A run's start and end carry what the metrics need (class, wait, length: markRunning, finishRun).
  if (event.classType !== null) return false;
  return event.state === 'running' ? event.run === 1 : endsRun(event);
}

export class EventHub extends EventEmitter<HubEvents> {
  private readonly reader: BlockingConnection;
  private readonly stop$ = new StopSignal();
  private loop: Promise<void> | null = null;
  private failing = false;
  /** Jobs lists open in browsers: while there is one, every changed job's row is read. */
  private rowFollowers = 0;

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
    let readAt = 0;
    while (!this.stop$.stopped) {
      const gap = readAt + READ_GAP_MS - Date.now();
      if (gap > 0 && !(await this.stop$.sleep(gap))) break;
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
      // A full read: more are waiting, read them at once.
      readAt = read.events.length < READ_COUNT ? Date.now() : 0;
      try {
        // A slice at a time: one entry of the stream may stand for a whole batch of a sweep's
        // jobs (lib/store/events.ts), and a read of 2,000 entries for 100,000 jobs.
        for (let at = 0; at < read.events.length && !this.stop$.stopped; at += READ_COUNT) {
          const events = read.events.slice(at, at + READ_COUNT);
          this.emit('batch', await this.read(events));
        }
      } catch (err) {
        // Redis went away between the two reads: the next batch brings the jobs up to date.
        if (!this.stop$.stopped) this.log.warn(`web: could not read changed jobs: ${errorMessage(err)}`);
      }
    }
  }

  /** A jobs list follows every change (until unfollowRows): rows of all changed jobs are read. */
  followRows(): void {
    this.rowFollowers++;
  }

  unfollowRows(): void {
    this.rowFollowers = Math.max(0, this.rowFollowers - 1);
  }

  /**
   * What the listeners need of these events, in one round trip: the rows (all, or those that
   * needsRow), and the ClassType of each stream entry's first job whose row is not read (the jobs
   * of one entry that names a range are one sweep's, which share their ClassType).
   */
  private async read(events: JobEvent[]): Promise<EventBatch> {
    const all = this.rowFollowers > 0;
    const rowIds = new Set<string>();
    for (const e of events) if (all || needsRow(e)) rowIds.add(e.job);
    const probes = new Map<string, string>();
    for (const e of events) if (!rowIds.has(e.job) && e.classType === null && !probes.has(e.id)) probes.set(e.id, e.job);
    const ids = [...rowIds];
    const [rowValues, classValues] = await Promise.all([
      ids.length ? this.store.getFields(ids, ROW_FIELDS) : [],
      probes.size ? this.store.getFields([...probes.values()], ['classType']) : [],
    ]);
    const read = rowsFrom(rowValues);
    const rows = new Map(ids.map((id, i) => [id, read[i]]));
    const classes = new Map([...probes.keys()].map((entry, i) => [entry, classValues[i][0]]));
    const changes = new Map<string, JobChange | null>();
    for (const e of events) {
      const row = rows.get(e.job);
      if (row !== undefined) {
        changes.set(e.job, row && { state: row.state, classType: row.classType });
        continue;
      }
      const classType = e.classType ?? classes.get(e.id);
      changes.set(e.job, classType == null ? null : { state: e.state, classType });
    }
    return { events, changes, rows };
  }

  async close(): Promise<void> {
    this.stop$.stop();
    this.reader.close();
    await this.loop;
    this.removeAllListeners();
  }
}

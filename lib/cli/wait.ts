import { isFinal, parseJobRecord, type JobRecord } from '../store/job-record.js';
import { sleep } from '../util/stop-signal.js';
import { silentLogger } from '../util/log.js';
import type { Store } from '../store/store.js';
import { Progress } from './progress.js';

// Waiting for jobs follows the Events stream (every state change is written there in the same
// step that makes it), so a finished job is seen the moment it finishes, without polling. A
// re-read of the jobs not yet ended, every few seconds, covers events trimmed from the stream.
// Work per event is constant: waiting for 5,000 jobs must not cost more than the jobs, which
// share the machine with it.

const BLOCK_MS = 5000;
/**
 * After a read, the next one waits until this long after it, so that events that come close
 * together (5,000 jobs ending within seconds) are taken in batches rather than waking this
 * process for each: a job's end is seen at most this much later.
 */
const READ_GAP_MS = 20;
const SUMMARY_ORDER = ['succeeded', 'failed', 'cancelled', 'rejected', 'running', 'granted', 'queued', 'unknown'];
/** What the jobs table shows of a job that has ended (views.ts: timeOf, detailOf). */
const TABLE_FIELDS = ['id', 'name', 'classType', 'state', 'reason', 'queuedAt', 'startedAt', 'endedAt', 'result'];

export interface WaitOptions {
  progress: boolean;
  /** Give up after this long; null: wait as long as it takes. */
  timeoutMs: number | null;
  /**
   * An Events stream id taken before the jobs were queued (see eventsPosition): every change of
   * their states is in the stream after it, so they start as queued and are not read first.
   */
  queuedAfter?: string;
  /** Read the whole records at the end (for --json); else what the jobs table shows. */
  fullRecords?: boolean;
}

/** States of a set of jobs with counts kept up to date as they change. */
class StateTally {
  readonly states = new Map<string, string>();
  readonly counts = new Map<string, number>();
  done = 0;

  set(id: string, state: string): void {
    const before = this.states.get(id);
    if (before === state) return;
    if (before !== undefined) {
      this.counts.set(before, (this.counts.get(before) ?? 1) - 1);
      if (isFinal(before)) this.done--;
    }
    this.states.set(id, state);
    this.counts.set(state, (this.counts.get(state) ?? 0) + 1);
    if (isFinal(state)) this.done++;
  }

  get open(): number {
    return this.states.size - this.done - (this.counts.get('unknown') ?? 0);
  }

  /** Counts by state: "3 succeeded · 1 failed · 2 running". */
  summary(): string {
    return SUMMARY_ORDER.filter((s) => this.counts.get(s)).map((s) => `${this.counts.get(s)} ${s}`).join(' · ');
  }
}

/** The id of the newest entry of the Events stream ('0-0' when it is empty). */
export function eventsPosition(store: Store): Promise<string> {
  return store.lastEventId();
}

export async function waitForJobs(store: Store, ids: string[], options: WaitOptions): Promise<{ records: JobRecord[]; timedOut: boolean }> {
  const tally = new StateTally();
  // Its errors are thrown (readEvents), not logged: the command reports them.
  const blocking = store.blocking(silentLogger);
  const progress = new Progress({ enabled: options.progress, bar: true });
  const deadline = options.timeoutMs === null ? Infinity : Date.now() + options.timeoutMs;
  try {
    let lastId: string;
    let refreshAt: number;
    if (options.queuedAfter !== undefined) {
      lastId = options.queuedAfter;
      for (const id of ids) tally.set(id, 'queued');
      refreshAt = Date.now() + BLOCK_MS;
    } else {
      lastId = await store.lastEventId();
      refreshAt = 0;
    }
    let readAt = 0;
    while (true) {
      if (Date.now() >= refreshAt) {
        // An ended job stays ended: only the others can have changed unseen.
        const open = ids.filter((id) => !isFinal(tally.states.get(id)));
        const rows = await store.getFields(open, ['state']);
        open.forEach((id, i) => tally.set(id, rows[i][0] ?? 'unknown'));
        refreshAt = Date.now() + BLOCK_MS;
      }
      progress.update(tally.done, tally.states.size, tally.summary());
      if (tally.open === 0 || Date.now() >= deadline) break;
      const gap = readAt + READ_GAP_MS - Date.now();
      if (gap > 0) await sleep(Math.min(gap, deadline - Date.now()));
      readAt = Date.now();
      const wait = Math.min(BLOCK_MS, Math.max(1, deadline - readAt));
      const batch = await blocking.readEvents(lastId, 10_000, wait);
      lastId = batch.lastId;
      for (const { job, state } of batch.events) if (tally.states.has(job)) tally.set(job, state);
    }
  } finally {
    progress.done();
    blocking.close();
  }
  const records = (await readRecords(store, ids, options.fullRecords ?? true)).filter((r): r is JobRecord => r !== null);
  return { records, timedOut: records.some((r) => !isFinal(r.state)) };
}

/**
 * The jobs' records; unless `full`, only the fields the jobs table shows of an ended job (the
 * stored definition and steps are most of a record). A job that has not ended is read whole:
 * its row shows the step it is at.
 */
async function readRecords(store: Store, ids: string[], full: boolean): Promise<(JobRecord | null)[]> {
  if (full) return store.getJobs(ids);
  const rows = await store.getFields(ids, TABLE_FIELDS);
  const records = rows.map((values) => {
    const hash: Record<string, string> = {};
    TABLE_FIELDS.forEach((field, i) => {
      if (values[i] !== null) hash[field] = values[i];
    });
    return parseJobRecord(hash);
  });
  const unended = ids.filter((_, i) => records[i] !== null && !isFinal(records[i].state));
  if (unended.length) {
    const whole = new Map((await store.getJobs(unended)).map((record, i) => [unended[i], record]));
    return records.map((record, i) => (whole.has(ids[i]) ? whole.get(ids[i])! : record));
  }
  return records;
}

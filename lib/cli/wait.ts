import type { Redis } from 'ioredis';
import { createRedis } from '../store/connect.js';
import { isFinal, type JobRecord } from '../store/job-record.js';
import type { Store } from '../store/store.js';
import { ProgressLine } from './output.js';

// Waiting for jobs follows the Events stream (every state change is written there in the same
// step that makes it), so a finished job is seen the moment it finishes, without polling. A full
// re-read every few seconds covers events trimmed from the stream. Work per event is constant:
// waiting for 5,000 jobs must not cost more than the jobs.

const BLOCK_MS = 5000;
const SUMMARY_ORDER = ['succeeded', 'failed', 'cancelled', 'rejected', 'running', 'granted', 'queued', 'unknown'];

export interface WaitOptions {
  progress: boolean;
  /** Give up after this long; null: wait as long as it takes. */
  timeoutMs: number | null;
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

  summary(): string {
    const parts = SUMMARY_ORDER.filter((s) => this.counts.get(s)).map((s) => `${this.counts.get(s)} ${s}`);
    return `${this.done}/${this.states.size} done · ${parts.join(' · ')}`;
  }
}

export async function waitForJobs(store: Store, ids: string[], options: WaitOptions): Promise<{ records: JobRecord[]; timedOut: boolean }> {
  const tally = new StateTally();
  const blocking: Redis = createRedis(store.url, 'actor');
  const progress = new ProgressLine(options.progress);
  const deadline = options.timeoutMs === null ? Infinity : Date.now() + options.timeoutMs;
  try {
    const newest = await store.redis.xrevrange(store.keys.events, '+', '-', 'COUNT', 1);
    let lastId = newest[0]?.[0] ?? '0-0';
    let refreshAt = 0;
    while (true) {
      if (Date.now() >= refreshAt) {
        const rows = await store.getFields(ids, ['state']);
        ids.forEach((id, i) => tally.set(id, rows[i][0] ?? 'unknown'));
        refreshAt = Date.now() + BLOCK_MS;
      }
      progress.update(tally.summary());
      if (tally.open === 0 || Date.now() >= deadline) break;
      const wait = Math.min(BLOCK_MS, Math.max(1, deadline - Date.now()));
      const reply = (await blocking.xread('COUNT', 10_000, 'BLOCK', wait, 'STREAMS', store.keys.events, lastId)) as [string, [string, string[]][]][] | null;
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          lastId = id;
          // Entries are: job <id> state <state> ...
          if (fields[0] === 'job' && fields[2] === 'state' && tally.states.has(fields[1])) tally.set(fields[1], fields[3]);
        }
      }
    }
  } finally {
    progress.done();
    blocking.disconnect();
  }
  const records = (await store.getJobs(ids)).filter((r): r is JobRecord => r !== null);
  return { records, timedOut: records.some((r) => !isFinal(r.state)) };
}

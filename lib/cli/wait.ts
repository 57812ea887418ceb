import type { Redis } from 'ioredis';
import { createRedis } from '../store/connect.js';
import { isFinal, type JobRecord } from '../store/job-record.js';
import type { Store } from '../store/store.js';
import { ProgressLine } from './output.js';

// Waiting for jobs follows the Events stream (every state change is written there in the same
// step that makes it), so a finished job is seen the moment it finishes, without polling. A full
// re-read every few seconds covers events trimmed from the stream.

const BLOCK_MS = 5000;

export interface WaitOptions {
  progress: boolean;
  /** Give up after this long; null: wait as long as it takes. */
  timeoutMs: number | null;
}

export async function waitForJobs(store: Store, ids: string[], options: WaitOptions): Promise<{ records: JobRecord[]; timedOut: boolean }> {
  const states = new Map<string, string>();
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
        ids.forEach((id, i) => states.set(id, rows[i][0] ?? 'unknown'));
        refreshAt = Date.now() + BLOCK_MS;
      }
      const pending = ids.filter((id) => !isFinal(states.get(id)) && states.get(id) !== 'unknown');
      progress.update(summary(ids, states));
      if (pending.length === 0 || Date.now() >= deadline) break;
      const reply = (await blocking.xread('COUNT', 5000, 'BLOCK', Math.min(BLOCK_MS, Math.max(1, deadline - Date.now())), 'STREAMS', store.keys.events, lastId)) as [string, [string, string[]][]][] | null;
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          lastId = id;
          const job = field(fields, 'job');
          const state = field(fields, 'state');
          if (job && state && states.has(job)) states.set(job, state);
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

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

export function summary(ids: string[], states: Map<string, string>): string {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(states.get(id) ?? 'unknown', (counts.get(states.get(id) ?? 'unknown') ?? 0) + 1);
  const done = ids.filter((id) => isFinal(states.get(id))).length;
  const parts = ['succeeded', 'failed', 'cancelled', 'rejected', 'running', 'granted', 'queued', 'unknown']
    .filter((s) => counts.get(s))
    .map((s) => `${counts.get(s)} ${s}`);
  return `${done}/${ids.length} done · ${parts.join(' · ')}`;
}

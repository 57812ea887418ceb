// The Events stream: every script that changes a job's state appends an entry (`Events:` in each
// script's header) in the same step. Readers follow it with XREAD on a connection of their own
// (BlockingConnection.readEvents, with its watchdog): `wait`, and the web page's event hub.

/** One entry of the Events stream: a job changed state. */
export interface JobEvent {
  /** The stream entry's id; its first part is the time it was written (ms). */
  id: string;
  job: string;
  state: string;
  run: number | null;
  host: string | null;
  reason: string | null;
}

export interface EventBatch {
  /** The id to read after next time (past entries that are not job events too). */
  lastId: string;
  events: JobEvent[];
}

export type XReadReply = [string, [string, string[]][]][] | null;

/** An XREAD reply on Events as job events; entries that are not job events are skipped. */
export function parseEvents(reply: XReadReply, after: string): EventBatch {
  const events: JobEvent[] = [];
  let lastId = after;
  for (const [, entries] of reply ?? []) {
    for (const [id, fields] of entries) {
      lastId = id;
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
      if (!f.job || !f.state) continue;
      events.push({ id, job: f.job, state: f.state, run: f.run ? Number(f.run) : null, host: f.host || null, reason: f.reason || null });
    }
  }
  return { lastId, events };
}

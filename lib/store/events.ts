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
  /** The job's ClassType, where the script that wrote it knew it (a run's start and end). */
  classType: string | null;
  /** A first run's wait from queued to started (ms), with its start (or its end, when no start was seen). */
  waited: number | null;
  /** An ended run's length (ms). */
  took: number | null;
}

export interface EventBatch {
  /** The id to read after next time (past entries that are not job events too). */
  lastId: string;
  events: JobEvent[];
}

export type XReadReply = [string, [string, string[]][]][] | null;

/** At most this many events are read from one entry that names a range of jobs (a batch: 2,000). */
const MAX_BATCH_EVENTS = 10_000;

/** An XREAD reply on Events as job events; entries that are not job events are skipped. */
export function parseEvents(reply: XReadReply, after: string, maxEvents = Infinity): EventBatch {
  const events: JobEvent[] = [];
  let lastId = after;
  for (const [, entries] of reply ?? []) {
    for (const [id, fields] of entries) {
      // The rest is read next time, from here on (an entry is always taken whole).
      if (events.length >= maxEvents) return { lastId, events };
      lastId = id;
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
      if (!f.state) continue;
      const range = f.job ? null : /^(\d+)-(\d+)$/.exec(f.jobs ?? '');
      if (range) {
        // One entry for a batch of a sweep's jobs (lua/addSweepJobs-N.lua): an event for each.
        for (let job = Number(range[1]); job <= Number(range[2]) && job - Number(range[1]) < MAX_BATCH_EVENTS; job++) {
          events.push({ id, job: String(job), state: f.state, run: null, host: null, reason: f.reason || null, classType: null, waited: null, took: null });
        }
        continue;
      }
      if (!f.job) continue;
      events.push({
        id, job: f.job, state: f.state, run: f.run ? Number(f.run) : null, host: f.host || null, reason: f.reason || null,
        classType: f.class || null, waited: f.waited ? Number(f.waited) : null, took: f.took ? Number(f.took) : null,
      });
    }
  }
  return { lastId, events };
}

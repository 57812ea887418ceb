import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { BlockingConnection } from '../store/blocking.js';
import { isFinal } from '../store/job-record.js';
import type { Logger } from '../util/log.js';
import type { StopSignal } from '../util/stop-signal.js';
import { errorMessage } from '../util/errors.js';
import type { HostRegistry } from '../ssh/hosts.js';
import { JobRemover } from './remover.js';

// Retention (config Retention: MaxAge, MaxJobs), applied by the supervisor as it runs: a loop
// beside the manager's (actors/manager.ts), in two parts.
//
//   Events (XREAD) ─ a job became final ─▶ compactJobs (its record shrinks at once)
//   a pass over Jobs, newest first, PAGE ids at a time ─▶ compact what the events missed,
//                                                        remove what is too old or too many
//
// A pass counts finished jobs from the newest: past MaxJobs of them, or ended before MaxAge ago,
// a finished job is removed with all it owns (lib/retention/remover.ts). It reads a few fields
// of each job, PAGE at a time, so 100,000 jobs are 200 short reads and nothing waits on it. A
// pass starts when jobs have ended since the last one (no sooner than GAP_FACTOR times as long
// as the last took, so passes cost at most about 1/GAP_FACTOR of the time), when the oldest
// finished job it kept reaches MaxAge, and at least every IDLE_PASS_MS.
//
// A job retried between the pass's read and its removal is not removed: removeJobs-N.lua takes
// only jobs final at that instant.

const PAGE = 500;
const EVENT_BATCH = 1000;
const EVENT_WAIT_MS = 5000;
/**
 * After a read that found jobs ended, the next read waits until this long after it, so that
 * jobs ending by the thousand are compacted a batch at a time (one compactJobs call for each
 * batch, not one per job). A record stays whole this much longer.
 */
const EVENT_GAP_MS = 250;
const IDLE_PASS_MS = 60_000;
const MIN_GAP_MS = 1000;
const GAP_FACTOR = 20;
/** pollMs is set with the spec as a job is routed, and goes when it is compacted. */
const FIELDS = ['state', 'endedAt', 'queuedAt', 'pollMs'];

export class Retention {
  private readonly remover: JobRemover;
  private readonly events: BlockingConnection;
  private endedSincePass = true;
  private lastPassAt = 0;
  private lastPassMs = 0;
  /** When the oldest finished job the last pass kept reaches MaxAge (Infinity: none will). */
  private nextExpiryAt = Infinity;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    hosts: HostRegistry,
  ) {
    this.remover = new JobRemover(config, store, log, hosts);
    this.events = store.blocking(log);
  }

  async run(stop: StopSignal): Promise<void> {
    const { maxAgeMs, maxJobs } = this.config.retention;
    this.log.info(`retention: finished jobs are compacted, and removed ${[maxAgeMs !== null ? `after ${maxAgeMs / 1000}s` : '', maxJobs !== null ? `past the newest ${maxJobs}` : ''].filter(Boolean).join(' or ') || 'never'}`);
    let after: string | null = null;
    let compactedAt = 0;
    while (!stop.stopped) {
      try {
        // Events from now on; a pass (the first is at once) takes whatever ended before.
        after ??= await this.store.lastEventId();
        if (this.passDue()) await this.pass(stop);
        const gap = compactedAt + EVENT_GAP_MS - Date.now();
        if (gap > 0 && !(await stop.sleep(Math.min(gap, this.nextPassIn())))) break;
        const batch = await this.events.readEvents(after, EVENT_BATCH, Math.min(EVENT_WAIT_MS, this.nextPassIn()));
        after = batch.lastId;
        const ended = [...new Set(batch.events.filter((e) => isFinal(e.state)).map((e) => e.job))];
        if (ended.length) {
          this.endedSincePass = true;
          // A full read: more are waiting, read them at once.
          compactedAt = batch.events.length < EVENT_BATCH ? Date.now() : 0;
          await this.store.compactJobs(ended);
        }
      } catch (err) {
        if (stop.stopped) break;
        // Redis away or refusing: said, and tried again a little later; nothing is lost (the
        // next pass compacts what the events brought meanwhile).
        this.log.warn(`retention: ${errorMessage(err)}; trying again in 5s`);
        await stop.sleep(5000);
      }
    }
  }

  private nextPassIn(): number {
    const gap = Math.max(MIN_GAP_MS, GAP_FACTOR * this.lastPassMs);
    const due = this.endedSincePass ? this.lastPassAt + gap : Math.min(this.lastPassAt + IDLE_PASS_MS, Math.max(this.nextExpiryAt, this.lastPassAt + gap));
    return Math.max(1, due - Date.now());
  }

  private passDue(): boolean {
    return this.nextPassIn() <= 1;
  }

  /** One pass over every job, newest first (see the top of this file). */
  async pass(stop: StopSignal): Promise<{ compacted: number; removed: number }> {
    const started = Date.now();
    this.endedSincePass = false;
    const { maxAgeMs, maxJobs } = this.config.retention;
    const cutoff = maxAgeMs === null ? -Infinity : started - maxAgeMs;
    let finished = 0, compacted = 0, removed = 0, oldestKept = Infinity;
    let below = Infinity;
    while (!stop.stopped) {
      const page = await this.store.jobPage(below, PAGE, FIELDS);
      if (page.length === 0) break;
      below = Number(page[page.length - 1].id);
      const doomed: string[] = [];
      const loose: string[] = [];
      for (const { id, fields: [state, endedAt, queuedAt, pollMs] } of page) {
        if (!isFinal(state ?? undefined)) continue;
        finished++;
        // Every final state records endedAt; a record without one (older, or damaged) is aged from its queuing.
        const ended = Number(endedAt ?? queuedAt ?? Date.now());
        if ((maxJobs !== null && finished > maxJobs) || ended < cutoff) {
          doomed.push(id);
          continue;
        }
        oldestKept = Math.min(oldestKept, ended);
        if (pollMs !== null) loose.push(id);
      }
      compacted += await this.store.compactJobs(loose);
      removed += (await this.remover.remove(doomed)).removed.length;
    }
    this.lastPassAt = Date.now();
    this.lastPassMs = this.lastPassAt - started;
    this.nextExpiryAt = maxAgeMs === null ? Infinity : oldestKept + maxAgeMs;
    if (removed || compacted) this.log.info(`retention: removed ${removed} finished jobs, compacted ${compacted} (${finished} finished jobs seen in ${this.lastPassMs}ms)`);
    return { compacted, removed };
  }

  /** Idempotent. */
  close(): void {
    this.events.close();
    this.remover.close();
  }
}

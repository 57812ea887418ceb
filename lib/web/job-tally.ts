import type { Store } from '../store/store.js';
import type { JobChange } from './event-hub.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';

// Jobs by state and class, for /metrics, without reading 100,000 records per scrape: one scan
// when the web server starts, then kept up to date from the Events stream (the hub's batches
// carry each changed job's state and class). A scan again every 10 minutes catches what the
// stream cannot tell: records purged by retention, entries trimmed from the stream.
//
// A scan runs while batches keep coming: changes seen during it wait and are applied after it,
// so an older value read by the scan never overwrites a newer one.

const PAGE = 1000;
export const RESCAN_MS = 10 * 60_000;

export class JobTally {
  /** id → its (state, class) key; a key is `${state} ${class}`. */
  private readonly jobs = new Map<string, string>();
  private readonly counts = new Map<string, number>();
  private pending: Map<string, string | null> | null = null;
  private scannedAt = 0;
  ready = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Counts as [state, class, number]. Empty until the first scan is done. */
  entries(): [string, string, number][] {
    if (!this.ready) return [];
    return [...this.counts].filter(([, n]) => n > 0).map(([key, n]) => [...(key.split(' ') as [string, string]), n]);
  }

  /** A job changed (null: its record is gone). */
  update(id: string, job: JobChange | null): void {
    const key = job ? this.interned(`${job.state} ${job.classType.replace(/\s/g, '_')}`) : null;
    if (this.pending) this.pending.set(id, key);
    else this.set(id, key);
  }

  /** One string per (state, class) for all the jobs that have it, not one per job (100,000 jobs). */
  private readonly interns = new Map<string, string>();
  private interned(key: string): string {
    const known = this.interns.get(key);
    if (known !== undefined) return known;
    this.interns.set(key, key);
    return key;
  }

  private set(id: string, key: string | null): void {
    const before = this.jobs.get(id);
    if (before === key) return;
    if (before !== undefined) this.counts.set(before, (this.counts.get(before) ?? 1) - 1);
    if (key === null) {
      this.jobs.delete(id);
      return;
    }
    this.jobs.set(id, key);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Scans every job if the last scan is older than RESCAN_MS (or there was none). */
  async refresh(now = Date.now()): Promise<void> {
    if (this.pending || now - this.scannedAt < RESCAN_MS) return;
    this.pending = new Map();
    try {
      const seen = new Map<string, string>();
      for (let offset = 0; ; offset += PAGE) {
        const ids = await this.store.jobIds(offset, PAGE);
        const values = await this.store.getFields(ids, ['state', 'classType']);
        ids.forEach((id, i) => {
          const [state, classType] = values[i];
          if (state) seen.set(id, this.interned(`${state} ${(classType ?? '?').replace(/\s/g, '_')}`));
        });
        if (ids.length < PAGE) break;
      }
      this.jobs.clear();
      this.counts.clear();
      for (const [id, key] of seen) this.set(id, key);
      for (const [id, key] of this.pending) this.set(id, key);
      this.scannedAt = Date.now();
      this.ready = true;
    } catch (err) {
      this.log.warn(`web: could not count the jobs for /metrics: ${errorMessage(err)}`);
      for (const [id, key] of this.pending) this.set(id, key);
    } finally {
      this.pending = null;
    }
  }
}

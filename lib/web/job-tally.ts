import type { Store } from '../store/store.js';
import type { JobChange } from './event-hub.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { IdTable, MAX_VALUE } from './id-table.js';

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
  /** Each job's (state, class) pair, as its index in `pairs` (0: none). */
  private jobs = new IdTable();
  /** The (state, class) pairs seen, as `${state} ${class}`; index 0 stands for none. */
  private readonly pairs: string[] = [''];
  private readonly indexes = new Map<string, number>();
  /** Jobs per pair, by index. */
  private counts: number[] = [0];
  private pending: Map<string, number> | null = null;
  private scannedAt = 0;
  ready = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Counts as [state, class, number]. Empty until the first scan is done. */
  entries(): [string, string, number][] {
    if (!this.ready) return [];
    return this.pairs.flatMap((pair, i) => (i > 0 && (this.counts[i] ?? 0) > 0 ? [[...(pair.split(' ') as [string, string]), this.counts[i]]] : []));
  }

  /** A job changed (null: its record is gone). */
  update(id: string, job: JobChange | null): void {
    const pair = job ? this.indexOf(job.state, job.classType) : 0;
    if (this.pending) this.pending.set(id, pair);
    else this.set(id, pair);
  }

  /**
   * The index of a (state, class) pair, made on first sight. A class is one of four and a state
   * one of seven: only corrupt records could make more pairs than an index holds, and those
   * beyond it are not counted.
   */
  private indexOf(state: string, classType: string): number {
    const pair = `${state} ${classType.replace(/\s/g, '_')}`;
    const known = this.indexes.get(pair);
    if (known !== undefined) return known;
    if (this.pairs.length > MAX_VALUE) return 0;
    this.pairs.push(pair);
    this.indexes.set(pair, this.pairs.length - 1);
    return this.pairs.length - 1;
  }

  private set(id: string, pair: number): void {
    const before = this.jobs.get(id);
    if (before === pair) return;
    if (before !== 0) this.counts[before] = (this.counts[before] ?? 1) - 1;
    this.jobs.set(id, pair);
    if (pair !== 0) this.counts[pair] = (this.counts[pair] ?? 0) + 1;
  }

  /** Scans every job if the last scan is older than RESCAN_MS (or there was none). */
  async refresh(now = Date.now()): Promise<void> {
    if (this.pending || now - this.scannedAt < RESCAN_MS) return;
    this.pending = new Map();
    try {
      // Counted afresh beside the tally in use, which goes on answering until the scan is done.
      const scanned = new IdTable();
      const counts: number[] = [0];
      for (let offset = 0; ; offset += PAGE) {
        const ids = await this.store.jobIds(offset, PAGE);
        const values = await this.store.getFields(ids, ['state', 'classType']);
        ids.forEach((id, i) => {
          const [state, classType] = values[i];
          if (!state) return;
          const pair = this.indexOf(state, classType ?? '?');
          if (pair === 0 || scanned.get(id) !== 0) return;
          scanned.set(id, pair);
          counts[pair] = (counts[pair] ?? 0) + 1;
        });
        if (ids.length < PAGE) break;
      }
      this.jobs = scanned;
      this.counts = counts;
      for (const [id, pair] of this.pending) this.set(id, pair);
      this.scannedAt = Date.now();
      this.ready = true;
    } catch (err) {
      this.log.warn(`web: could not count the jobs for /metrics: ${errorMessage(err)}`);
      for (const [id, pair] of this.pending) this.set(id, pair);
    } finally {
      this.pending = null;
    }
  }
}

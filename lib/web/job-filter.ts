import type { Store } from '../store/store.js';
import { JOB_STATES, parseJobRecord, type JobRecord, type JobState } from '../store/job-record.js';

// The jobs list's filter (state, name, host, sweep) and the listing it selects, newest first.
// A sweep is the jobs one file made with `Each:`, named Name[0], Name[1], …: its filter value is
// the part before `[`.

export interface JobFilter {
  state: JobState | null;
  /** A part of the name, any case. */
  name: string | null;
  /**
   * local (any node's local slots), local:<node>, or a host's name (host:lab1 and lab1 both match
   * jobs placed on lab1).
   */
  host: string | null;
  sweep: string | null;
}

/**
 * What a row of the jobs list shows (and the filter needs): a job record without its definition.
 * soleRun: a compacted record whose host is its location has no host field (lua/compactJobs-N.lua).
 */
export const ROW_FIELDS = ['id', 'name', 'classType', 'state', 'host', 'soleRun', 'location', 'reason', 'queuedAt', 'startedAt', 'endedAt', 'attempt', 'retries', 'run', 'result', 'retryAt', 'exitCode', 'cancelRequested'];

export const NO_FILTER: JobFilter = { state: null, name: null, host: null, sweep: null };

/** Reads the filter from a query string; an unknown state is an error the page shows. */
export function parseFilter(query: URLSearchParams): JobFilter | string {
  const text = (key: string) => {
    const value = query.get(key)?.trim() ?? '';
    return value === '' ? null : value.slice(0, 200);
  };
  const state = text('state');
  if (state !== null && !(JOB_STATES as readonly string[]).includes(state)) return `state ${state}: use one of ${JOB_STATES.join(', ')}`;
  return { state: state as JobState | null, name: text('name'), host: text('host'), sweep: text('sweep') };
}

export function isFiltered(filter: JobFilter): boolean {
  return filter.state !== null || filter.name !== null || filter.host !== null || filter.sweep !== null;
}

export function matches(filter: JobFilter, job: JobRecord): boolean {
  if (filter.state && job.state !== filter.state) return false;
  if (filter.name && !job.name.toLowerCase().includes(filter.name.toLowerCase())) return false;
  if (filter.host && !placedOn(job.host, filter.host)) return false;
  if (filter.sweep && sweepOf(job.name) !== filter.sweep) return false;
  return true;
}

/** `align[12]` → `align`; null for a name that is not one of a sweep. */
export function sweepOf(name: string): string | null {
  const match = /^(.*)\[\d+\]$/.exec(name);
  return match ? match[1] : null;
}

/** Job rows from ROW_FIELDS values read with Store.getFields (null: no such job). */
export function rowsFrom(values: (string | null)[][]): (JobRecord | null)[] {
  return values.map((row) => {
    const hash: Record<string, string> = {};
    ROW_FIELDS.forEach((field, i) => {
      if (row[i] !== null) hash[field] = row[i]!;
    });
    return parseJobRecord(hash);
  });
}

const PAGE = 1000;
/** A filtered list looks at most at this many of the newest jobs, so that a page never reads all 100,000. */
export const SCAN_LIMIT = 50_000;

export interface Listing {
  jobs: JobRecord[];
  /** How many of the newest jobs were looked at. */
  scanned: number;
  /** Whether every job was looked at (else older ones may match too). */
  complete: boolean;
}

/** The newest `limit` jobs that match, looking at no more than SCAN_LIMIT jobs. */
export async function listJobs(store: Store, filter: JobFilter, limit: number): Promise<Listing> {
  const jobs: JobRecord[] = [];
  let scanned = 0;
  for (;;) {
    const want = isFiltered(filter) ? PAGE : Math.min(PAGE, limit - jobs.length);
    const ids = await store.jobIds(scanned, want);
    scanned += ids.length;
    for (const job of rowsFrom(await store.getFields(ids, ROW_FIELDS))) {
      if (job && matches(filter, job) && jobs.length < limit) jobs.push(job);
    }
    if (ids.length < want) return { jobs, scanned, complete: true };
    if (jobs.length >= limit || scanned >= SCAN_LIMIT) return { jobs, scanned, complete: false };
  }
}

/** Whether a job placed at `where` (local:<node>, host:<name>) is on `host` as the filter names it. */
function placedOn(where: string | null, host: string): boolean {
  if (where === host || where === `host:${host}`) return true;
  return host === 'local' && Boolean(where?.startsWith('local'));
}

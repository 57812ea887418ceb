import type { Store } from '../store/store.js';
import { JobManagerError } from '../util/errors.js';

// Which jobs a command's arguments mean, wherever job ids are taken (`wait`, `cancel`, `show`,
// `jobs --name`, `purge`): each argument is
//
//   12           a job id (taken as it is: the command says if there is no such job)
//   12-100011    every job from 12 to 100011 that exists (a sweep's range, as `queue` prints it)
//   align        every job named align, and every job of each sweep named align
//   align[7]     a sweep's job by its name (also found as any job's name)
//
// An argument of digits is always an id, and digits-digits a range, even where a job bears that
// name. Names are resolved with the name index that `queue` writes (Named:<name>: job ids, and
// each sweep's range), and ranges with one ZRANGE of Jobs: no command reads 100,000 records to
// find 100,000 jobs.

/** A selector that selects nothing, or cannot be read: the message says which and what to do. */
export class SelectorError extends JobManagerError {
  override readonly code = 'JM_SELECTOR';
}

/** A range wider than this is refused (the largest sweep: lib/jobfile/sweep.ts). */
export const MAX_RANGE = 1_000_000;

const ID = /^\d+$/;
const RANGE = /^(\d+)-(\d+)$/;
const SWEEP_JOB = /^(.*)\[(\d+)\]$/;

/** The ids the arguments select, in the order given, each once. Throws SelectorError. */
export async function resolveJobSelectors(store: Store, args: string[]): Promise<string[]> {
  const ids = new Set<string>();
  for (const arg of args) {
    for (const id of await resolveOne(store, arg)) ids.add(id);
  }
  return [...ids];
}

async function resolveOne(store: Store, arg: string): Promise<string[]> {
  if (arg.trim() === '') throw new SelectorError('an empty argument selects no job: give ids (12), ranges (12-20) or job names');
  if (ID.test(arg)) return [String(BigInt(arg))];
  const range = RANGE.exec(arg);
  if (range) {
    const [first, last] = [Number(range[1]), Number(range[2])];
    if (first > last) throw new SelectorError(`${arg}: a range goes from the lower id to the higher (${last}-${first})`);
    if (last - first + 1 > MAX_RANGE) throw new SelectorError(`${arg}: a range may span at most ${MAX_RANGE.toLocaleString('en')} ids; split it`);
    const ids = await store.jobIdsBetween(first, last);
    if (ids.length === 0) throw new SelectorError(`${arg}: no job has an id in this range; \`jobmanager jobs\` lists the jobs`);
    return ids;
  }
  const named = await idsNamed(store, arg);
  if (named.length) return named;
  const sweepJob = SWEEP_JOB.exec(arg);
  if (sweepJob) {
    const index = Number(sweepJob[2]);
    const ids: string[] = [];
    for (const entry of await store.namedEntries(sweepJob[1])) {
      const range = RANGE.exec(entry);
      if (range && Number(range[1]) + index <= Number(range[2])) ids.push(String(Number(range[1]) + index));
    }
    const found = await store.existingJobIds(ids);
    if (found.length) return found;
  }
  throw new SelectorError(`no job is named ${JSON.stringify(arg)}; give a job's id (12), a range (12-20) or a name that \`jobmanager jobs\` shows`);
}

/** The existing jobs that the name index gives for `name`: single jobs and whole sweeps. */
async function idsNamed(store: Store, name: string): Promise<string[]> {
  const single: string[] = [];
  const ids: string[] = [];
  for (const entry of await store.namedEntries(name)) {
    const range = RANGE.exec(entry);
    if (range) ids.push(...(await store.jobIdsBetween(Number(range[1]), Number(range[2]))));
    else if (ID.test(entry)) single.push(entry);
  }
  // Jobs purged since they were queued are still in the index: only those that exist count.
  ids.push(...(await store.existingJobIds(single)));
  return ids.sort((a, b) => Number(a) - Number(b));
}

/** The one job `arg` selects (an id, or a name or range that selects one job), for `show` and `logs`. */
export async function resolveOneJob(store: Store, arg: string): Promise<string> {
  if (ID.test(arg)) return String(BigInt(arg));
  const ids = await resolveJobSelectors(store, [arg]);
  if (ids.length > 1) throw new SelectorError(`${arg} selects ${ids.length} jobs (${ids[0]} to ${ids[ids.length - 1]}); give one id, or list them with \`jobmanager jobs --name ${arg}\``);
  return ids[0];
}

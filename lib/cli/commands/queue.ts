import { randomUUID } from 'node:crypto';
import { parseDuration } from '../../util/duration.js';
import { readConfig, openStore } from '../context.js';
import { loadJobFiles, type LoadedJob } from '../../jobfile/load-files.js';
import { jobsTable, jobView } from '../views.js';
import { table } from '../output.js';
import { eventsPosition, waitForJobs } from '../wait.js';
import type { Store } from '../../store/store.js';
import type { JobRecord } from '../../store/job-record.js';
import type { JobSpecError } from '../../util/errors.js';
import type { Output } from '../output.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager queue FILE|DIR... [--wait]`: validate every job file, then queue them all (or, if
// any is invalid, none: bad input changes nothing). Prints the new job ids.

export async function queueCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.positionals.length === 0) {
    out.error('usage: jobmanager queue FILE|DIR... [--wait] [--json]');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const loaded = await loadJobFiles(args.positionals);
  if (loaded.errors.length) return refuse(loaded.errors, out, 'queued');
  const handle = await openStore(config, 'cli', (text) => out.error(text));
  try {
    const queuedAfter = args.wait ? await eventsPosition(handle.store) : undefined;
    const submitted = await submit(handle.store, loaded.jobs);
    if (!args.wait) {
      if (out.json) out.data({ queued: submitted.jobs, sweeps: submitted.sweeps });
      else for (const line of describeSubmitted(submitted)) out.line(line);
      return EXIT.ok;
    }
    return await waitAndReport(handle.store, submitted.ids, args, queuedAfter);
  } finally {
    await handle.release();
  }
}

/** Bad job files: each error, then that nothing was done (bad input changes nothing). */
export function refuse(errors: JobSpecError[], out: Output, what: 'queued' | 'run'): number {
  for (const err of errors) out.error(`error: ${err.message}`);
  out.error(`nothing was ${what}: ${errors.length} job file${errors.length > 1 ? 's have' : ' has'} problems`);
  if (out.json) out.data({ queued: [], errors: errors.map((e) => ({ code: e.code, file: e.file, line: e.line, key: e.key, reason: e.reason })) });
  return EXIT.usage;
}

/** What `queue` queued: the jobs of single job files, and the sweeps, each one range of ids. */
export interface Submitted {
  /** Every id, in the order of the files (a sweep's in the order of its rows). */
  ids: string[];
  jobs: { id: string; name: string; file: string }[];
  sweeps: { name: string; file: string; first: string; last: string; count: number }[];
}

/**
 * Queues the loaded job files: the single jobs in one pipeline (addJobs), each sweep as one
 * range of ids written in batches (addSweep). Each submission has a token of its own, so that
 * a call that ioredis sends again after a lost reply queues nothing twice.
 */
export async function submit(store: Store, jobs: LoadedJob[]): Promise<Submitted> {
  const single = jobs.filter((job) => job.rows === null);
  const singleIds = await store.addJobs(
    single.map((job) => ({ token: randomUUID(), name: job.spec.name, classType: job.spec.classType, file: job.file, baseDir: job.spec.baseDir, raw: job.raw })),
  );
  const result: Submitted = { ids: [], jobs: single.map((job, i) => ({ id: singleIds[i], name: job.spec.name, file: job.file })), sweeps: [] };
  let next = 0;
  for (const job of jobs) {
    if (job.rows === null) {
      result.ids.push(singleIds[next++]);
      continue;
    }
    const sweep = { token: randomUUID(), name: job.spec.name, classType: job.spec.classType, file: job.file, baseDir: job.spec.baseDir, raw: job.raw, rows: job.rows };
    const first = Number(await store.addSweep(sweep));
    for (let i = 0; i < job.rows.length; i++) result.ids.push(String(first + i));
    result.sweeps.push({ name: job.spec.name, file: job.file, first: String(first), last: String(first + job.rows.length - 1), count: job.rows.length });
  }
  return result;
}

/** The jobs as a table (ID, NAME, FILE), and one line per sweep: its range, not a line per job. */
export function describeSubmitted(submitted: Submitted): string[] {
  const lines = submitted.jobs.length ? [table(['ID', 'NAME', 'FILE'], submitted.jobs.map((j) => [j.id, j.name, j.file]))] : [];
  for (const s of submitted.sweeps) {
    lines.push(`queued ${s.count} job${s.count === 1 ? '' : 's'} of sweep ${s.name}: ${s.first === s.last ? s.first : `${s.first}-${s.last}`}`);
  }
  return lines;
}

/** More jobs than this (a sweep) are reported as counts, with the table of those that did not succeed. */
const TABLE_ROWS = 1000;
const UNSUCCESSFUL_ROWS = 100;

function summaryOf(records: JobRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  const lines = [`${records.length} jobs: ${[...counts].map(([state, n]) => `${n} ${state}`).join(', ')}`];
  const unsuccessful = records.filter((r) => r.state !== 'succeeded');
  if (unsuccessful.length) {
    lines.push(jobsTable(unsuccessful.slice(0, UNSUCCESSFUL_ROWS)));
    if (unsuccessful.length > UNSUCCESSFUL_ROWS) lines.push(`… and ${unsuccessful.length - UNSUCCESSFUL_ROWS} more that did not succeed: \`jobmanager jobs --state failed\` lists them`);
  }
  return lines.join('\n');
}

/**
 * Wait for `ids`, print their table (or JSON); exit 0 only if every one succeeded. `queuedAfter`:
 * the Events stream position taken before this command queued them (see waitForJobs).
 */
export async function waitAndReport(store: Store, ids: string[], args: CommandArgs, queuedAfter?: string): Promise<number> {
  const timeoutMs = args.timeout ? parseDuration(args.timeout) : null;
  if (args.timeout && timeoutMs === null) {
    args.out.error(`--timeout ${args.timeout}: not a duration (e.g. 30s, 10m)`);
    return EXIT.usage;
  }
  const { records, timedOut } = await waitForJobs(store, ids, { progress: !args.out.json, timeoutMs, queuedAfter, fullRecords: args.out.json });
  if (args.out.json) args.out.data({ jobs: records.map(jobView), timedOut });
  else if (records.length <= TABLE_ROWS) args.out.line(jobsTable(records));
  else args.out.line(summaryOf(records));
  if (timedOut) args.out.error(`gave up waiting after ${args.timeout}; the jobs go on`);
  return records.length === ids.length && records.every((r) => r.state === 'succeeded') ? EXIT.ok : EXIT.jobsFailed;
}

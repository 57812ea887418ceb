import { randomUUID } from 'node:crypto';
import { parseDuration } from '../../util/duration.js';
import { readConfig, openStore } from '../context.js';
import { loadJobFiles, type LoadedJob } from '../../jobfile/load-files.js';
import { jobsTable, jobView } from '../views.js';
import { table } from '../output.js';
import { eventsPosition, waitForJobs } from '../wait.js';
import type { Store } from '../../store/store.js';
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
    const ids = await submit(handle.store, loaded.jobs);
    if (!args.wait) {
      if (out.json) out.data({ queued: ids.map((id, i) => ({ id, name: loaded.jobs[i].spec.name, file: loaded.jobs[i].file })) });
      else out.line(table(['ID', 'NAME', 'FILE'], ids.map((id, i) => [id, loaded.jobs[i].spec.name, loaded.jobs[i].file])));
      return EXIT.ok;
    }
    return await waitAndReport(handle.store, ids, args, queuedAfter);
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

export async function submit(store: Store, jobs: LoadedJob[]): Promise<string[]> {
  return store.addJobs(
    jobs.map((job) => ({ token: randomUUID(), name: job.spec.name, classType: job.spec.classType, file: job.file, baseDir: job.spec.baseDir, raw: job.raw })),
  );
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
  else args.out.line(jobsTable(records));
  if (timedOut) args.out.error(`gave up waiting after ${args.timeout}; the jobs go on`);
  return records.length === ids.length && records.every((r) => r.state === 'succeeded') ? EXIT.ok : EXIT.jobsFailed;
}

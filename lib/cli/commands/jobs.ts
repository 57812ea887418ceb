import { readConfig, openStore } from '../context.js';
import { jobsTable, jobView, showJob } from '../views.js';
import { JOB_STATES, type JobRecord } from '../../store/job-record.js';
import { jobDir } from '../../runs/paths.js';
import { waitAndReport } from './queue.js';
import { resolveJobSelectors, resolveOneJob, SelectorError } from '../selectors.js';
import type { Output } from '../output.js';
import { EXIT, type CommandArgs } from './types.js';

// Read-only views of jobs: `jobs [--name NAME]`, `show ID`, and `wait ID...` (ids, ranges and
// names: lib/cli/selectors.ts).

export async function jobsCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.state && !(JOB_STATES as readonly string[]).includes(args.state)) {
    out.error(`--state ${args.state}: use one of ${JOB_STATES.join(', ')}`);
    return EXIT.usage;
  }
  const limit = args.all ? Infinity : Number(args.limit ?? 50);
  if (!(limit > 0)) {
    out.error(`--limit ${args.limit}: give a positive number`);
    return EXIT.usage;
  }
  const handle = await openStore(readConfig(args.config));
  try {
    const records: JobRecord[] = [];
    const page = 500;
    // --name: the jobs of that name (and the sweeps), from the name index, newest first.
    const named = args.name === undefined ? null : (await resolveJobSelectors(handle.store, [args.name])).reverse();
    for (let offset = 0; records.length < limit; offset += page) {
      const ids = named ? named.slice(offset, offset + page) : await handle.store.jobIds(offset, page);
      if (ids.length === 0) break;
      for (const record of await handle.store.getJobs(ids)) {
        if (record && (!args.state || record.state === args.state)) records.push(record);
        if (records.length >= limit) break;
      }
    }
    if (out.json) out.data({ jobs: records.map(jobView) });
    else if (records.length === 0) out.line(args.state ? `no ${args.state} jobs${named ? ` named ${args.name}` : ''}` : 'no jobs yet: queue one with `jobmanager queue FILE`');
    else out.line(jobsTable(records));
    return EXIT.ok;
  } catch (err) {
    return refuseSelector(err, out);
  } finally {
    await handle.release();
  }
}

export async function showCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.positionals.length !== 1) {
    out.error('usage: jobmanager show ID [--json]');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    const id = await resolveOneJob(handle.store, args.positionals[0]);
    const record = await handle.store.getJob(id);
    if (!record) {
      out.error(`no job with id ${id}; \`jobmanager jobs\` lists the known ones`);
      return EXIT.usage;
    }
    const runs = await handle.store.runsOf(id);
    const dir = record.classType === 'Local' || record.classType === 'Thread' ? jobDir(config.stateDir, id) : null;
    if (out.json) out.data({ ...jobView(record), directory: dir, runs });
    else out.line(showJob(record, runs, dir));
    return EXIT.ok;
  } catch (err) {
    return refuseSelector(err, out);
  } finally {
    await handle.release();
  }
}

export async function waitCommand(args: CommandArgs): Promise<number> {
  if (args.positionals.length === 0) {
    args.out.error('usage: jobmanager wait ID... [--timeout 10m] [--json]');
    return EXIT.usage;
  }
  const handle = await openStore(readConfig(args.config));
  try {
    const ids = await resolveJobSelectors(handle.store, args.positionals);
    const known = await handle.store.getFields(ids, ['state']);
    const missing = ids.filter((_, i) => known[i][0] === null);
    if (missing.length) {
      args.out.error(`no job with id ${missing.join(', ')}`);
      return EXIT.usage;
    }
    return await waitAndReport(handle.store, ids, args);
  } catch (err) {
    return refuseSelector(err, args.out);
  } finally {
    await handle.release();
  }
}

/** A selector that selects nothing is bad input (exit 2); anything else is thrown on. */
export function refuseSelector(err: unknown, out: Output): number {
  if (!(err instanceof SelectorError)) throw err;
  out.error(`error: ${err.message}`);
  if (out.json) out.data({ error: err.toJSON() });
  return EXIT.usage;
}

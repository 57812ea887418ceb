import { readConfig, openStore } from '../context.js';
import { table, timestamp } from '../output.js';
import { FINAL_STATES, isFinal } from '../../store/job-record.js';
import type { Store } from '../../store/store.js';
import { parseDuration } from '../../util/duration.js';
import { JobRemover } from '../../retention/remover.js';
import { silentLogger, type Logger } from '../../util/log.js';
import { resolveJobSelectors } from '../selectors.js';
import { refuseSelector } from './jobs.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager purge [--older-than D] [--state S] [--dry-run] [ID|RANGE|NAME...]` (ids, ranges
// and names as lib/cli/selectors.ts reads them): finished jobs removed now,
// as retention removes them (lib/retention/remover.ts: record, runs, StateDir/jobs/<id>/, the
// directory on their SSH host). Named jobs must all be finished: one that is not is refused by
// name and state, and nothing is removed. Without ids, every finished job that the filters
// select; with ids, those of them that the filters select. --dry-run lists and removes nothing.

const PAGE = 500;
/** Rows printed in full; past that, a count (--json lists them all). */
const SHOWN_ROWS = 50;

interface Candidate {
  id: string;
  name: string;
  state: string;
  endedAt: number | null;
}

export async function purgeCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.state && !(FINAL_STATES as readonly string[]).includes(args.state)) {
    out.error(`--state ${args.state}: only finished jobs are purged; use one of ${FINAL_STATES.join(', ')}`);
    return EXIT.usage;
  }
  const olderThanMs = args.olderThan === undefined ? null : parseDuration(args.olderThan);
  if (args.olderThan !== undefined && olderThanMs === null) {
    out.error(`--older-than ${args.olderThan}: give a duration such as 30m, 7d or 0s (every finished job)`);
    return EXIT.usage;
  }
  if (args.positionals.length === 0 && olderThanMs === null && !args.state) {
    out.error('purge what? name jobs (jobmanager purge 12 13), or select them: --older-than 7d, --state failed (--older-than 0s: every finished job); --dry-run lists them first');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    const now = Date.now();
    const selected = (c: Candidate) => isFinal(c.state) && (!args.state || c.state === args.state) && (olderThanMs === null || (c.endedAt ?? 0) <= now - olderThanMs);
    let candidates: Candidate[];
    if (args.positionals.length) {
      let ids: string[];
      try {
        ids = await resolveJobSelectors(handle.store, args.positionals);
      } catch (err) {
        return refuseSelector(err, out);
      }
      const named = await namedJobs(handle.store, ids);
      const unknown = named.filter((c) => c.state === '');
      const live = named.filter((c) => c.state !== '' && !isFinal(c.state));
      if (unknown.length || live.length) {
        for (const c of unknown) out.error(`no job with id ${c.id}; \`jobmanager jobs\` lists the known ones`);
        for (const c of live) out.error(`job ${c.id} (${c.name}) is ${c.state}: only finished jobs are purged (\`jobmanager cancel ${c.id}\` first, or wait for it)`);
        out.error('nothing was purged');
        return EXIT.usage;
      }
      candidates = named.filter(selected);
    } else {
      candidates = await everyJob(handle.store, selected);
    }
    const results = new Map<string, string>();
    if (!args.dryRun) {
      const log: Logger = { ...silentLogger, warn: (text) => out.error(text) };
      const remover = new JobRemover(config, handle.store, log);
      try {
        for (let i = 0; i < candidates.length; i += PAGE) {
          const removal = await remover.remove(candidates.slice(i, i + PAGE).map((c) => c.id));
          for (const id of removal.removed) results.set(id, 'removed');
          for (const { id, state } of removal.kept) results.set(id, `kept: ${state} now`);
          for (const id of removal.unknown) results.set(id, 'gone already');
        }
      } finally {
        remover.close();
      }
    }
    report(args, candidates, results);
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

async function namedJobs(store: Store, ids: string[]): Promise<Candidate[]> {
  const unique = [...new Set(ids)];
  const fields = await store.getFields(unique, ['state', 'name', 'endedAt']);
  return unique.map((id, i) => {
    const [state, name, endedAt] = fields[i];
    return { id, name: name ?? '', state: state ?? '', endedAt: endedAt ? Number(endedAt) : null };
  });
}

/** Every job that `selected` takes, newest first, read PAGE at a time. */
async function everyJob(store: Store, selected: (c: Candidate) => boolean): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (let below = Infinity; ;) {
    const page = await store.jobPage(below, PAGE, ['state', 'name', 'endedAt']);
    if (page.length === 0) return out;
    below = Number(page[page.length - 1].id);
    for (const { id, fields: [state, name, endedAt] } of page) {
      const c = { id, name: name ?? '', state: state ?? '', endedAt: endedAt ? Number(endedAt) : null };
      if (selected(c)) out.push(c);
    }
  }
}

function report(args: CommandArgs, candidates: Candidate[], results: Map<string, string>): void {
  const { out } = args;
  const resultOf = (c: Candidate) => (args.dryRun ? 'would be removed' : results.get(c.id) ?? 'removed');
  if (out.json) {
    out.data({ dryRun: args.dryRun, jobs: candidates.map((c) => ({ id: c.id, name: c.name, state: c.state, endedAt: c.endedAt, result: resultOf(c) })) });
    return;
  }
  if (candidates.length === 0) {
    out.line('no finished job matches: nothing to purge');
    return;
  }
  const rows = candidates.slice(0, SHOWN_ROWS).map((c) => [c.id, c.name, c.state, timestamp(c.endedAt), resultOf(c)]);
  out.line(table(['ID', 'NAME', 'STATE', 'ENDED', 'RESULT'], rows, [10, 40]));
  if (candidates.length > SHOWN_ROWS) out.line(`… and ${candidates.length - SHOWN_ROWS} more (--json lists them all)`);
  const removed = args.dryRun ? 0 : [...results.values()].filter((r) => r === 'removed').length;
  out.line(args.dryRun ? `${candidates.length} finished jobs would be removed (--dry-run: nothing was)` : `removed ${removed} finished jobs`);
}

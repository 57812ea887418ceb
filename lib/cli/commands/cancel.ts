import { readConfig, openStore } from '../context.js';
import { table } from '../output.js';
import { resolveJobSelectors } from '../selectors.js';
import { refuseSelector } from './jobs.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager cancel ID|RANGE|NAME...` (lib/cli/selectors.ts): a job that has not started ends at once; a running one is stopped
// (its process group gets TERM, then KILL after KillGrace) and ends as cancelled.

const BATCH = 5000;
/** More jobs than this are shown as a count per result, not a row each. */
const TABLE_ROWS = 50;

const MEANING: Record<string, string> = {
  cancelled: 'cancelled',
  cancelling: 'cancelling: its processes are being stopped',
  unknown: 'no such job',
};

export async function cancelCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.positionals.length === 0) {
    out.error('usage: jobmanager cancel ID... [--json]');
    return EXIT.usage;
  }
  const handle = await openStore(readConfig(args.config));
  try {
    const ids = await resolveJobSelectors(handle.store, args.positionals);
    // In batches: one cancel script holds Redis while it runs, and a sweep may be 100,000 jobs.
    const results: string[] = [];
    for (let at = 0; at < ids.length; at += BATCH) results.push(...(await handle.store.cancel(ids.slice(at, at + BATCH))));
    const rows = ids.map((id, i) => ({ id, result: results[i] }));
    const meaning = (result: string) => MEANING[result] ?? `already ${result}`;
    if (out.json) out.data({ jobs: rows });
    else if (rows.length <= TABLE_ROWS) out.line(table(['ID', 'RESULT'], rows.map((r) => [r.id, meaning(r.result)])));
    else out.line(table(['JOBS', 'RESULT'], countBy(rows.map((r) => r.result)).map(([result, n]) => [String(n), meaning(result)])));
    return rows.some((r) => r.result === 'unknown') ? EXIT.usage : EXIT.ok;
  } catch (err) {
    return refuseSelector(err, out);
  } finally {
    await handle.release();
  }
}

/** Each distinct value with how often it occurs, most frequent first. */
function countBy(values: string[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

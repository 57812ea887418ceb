import { readConfig, openStore } from '../context.js';
import { table } from '../output.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager cancel ID...`: a job that has not started ends at once; a running one is stopped
// (its process group gets TERM, then KILL after KillGrace) and ends as cancelled.

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
    const results = await handle.store.cancel(args.positionals);
    const rows = args.positionals.map((id, i) => ({ id, result: results[i] }));
    if (out.json) out.data({ jobs: rows });
    else out.line(table(['ID', 'RESULT'], rows.map((r) => [r.id, MEANING[r.result] ?? `already ${r.result}`])));
    return rows.some((r) => r.result === 'unknown') ? EXIT.usage : EXIT.ok;
  } finally {
    await handle.release();
  }
}

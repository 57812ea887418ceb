import { readConfig, openStore } from '../context.js';
import { loadJobFiles } from '../../jobfile/load-files.js';
import { eventsPosition } from '../wait.js';
import { lockOwner } from '../../util/state-lock.js';
import { describeSubmitted, refuse, submit, waitAndReport } from './queue.js';
import { EXIT, type CommandArgs } from './types.js';
import type { SupervisorHandle } from '../runtime.js';
import { describeEnded, endIdleInstances } from '../../backends/ec2/ending.js';

// `jobmanager run FILE|DIR...`: the one-command way. Starts a supervisor in this process (unless
// one already runs for this state directory: then it is used), queues the jobs, waits for them
// with a progress line, prints the result table and stops what it started: the supervisor, then
// the EC2 instances launched while it ran (unless --keep-instances; an instance still busy with a
// job that did not end is left, and said so). Exit code 0 only when every job succeeded.

export async function runCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.positionals.length === 0) {
    out.error('usage: jobmanager run FILE|DIR... [--json]');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const loaded = await loadJobFiles(args.positionals);
  if (loaded.errors.length) return refuse(loaded.errors, out, 'run');
  const owner = lockOwner(config.stateDir);
  let supervisor: SupervisorHandle | null = null;
  const startedAt = Date.now();
  if (owner === null) {
    supervisor = await args.runtime.createSupervisor(config, { echo: false });
    await supervisor.start();
  } else if (!out.json) {
    out.error(`using the supervisor already running (pid ${owner})`);
  }
  try {
    const handle = await openStore(config);
    try {
      const queuedAfter = await eventsPosition(handle.store);
      const submitted = await submit(handle.store, loaded.jobs);
      const ids = submitted.ids;
      if (!out.json && submitted.sweeps.length === 0) out.error(`queued ${ids.length} job${ids.length > 1 ? 's' : ''}: ${ids.join(' ')}`);
      else if (!out.json) for (const line of describeSubmitted(submitted)) out.error(line);
      return await waitAndReport(handle.store, ids, args, queuedAfter);
    } finally {
      await handle.release();
    }
  } finally {
    await supervisor?.stop();
    if (supervisor && !args.keepInstances && loaded.jobs.some((j) => j.spec.classType === 'EC2')) await endInstances(args, config, startedAt);
  }
}

/** The instances requested since `since` (by this run's supervisor), ended. */
async function endInstances(args: CommandArgs, config: ReturnType<typeof readConfig>, since: number): Promise<void> {
  const handle = await openStore(config);
  try {
    const ended = await endIdleInstances(config, handle.store, (r) => r.requestedAt >= since);
    for (const line of describeEnded(ended)) args.out.error(line);
  } finally {
    await handle.release();
  }
}

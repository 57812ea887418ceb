import { readConfig, openStore } from '../context.js';
import { isFinal } from '../../store/job-record.js';
import { StopSignal } from '../../util/stop-signal.js';
import type { Store } from '../../store/store.js';
import type { JobRecord } from '../../store/job-record.js';
import { JobLogs } from '../../logs/job-log.js';
import { specOfRecord } from '../../jobfile/record-spec.js';
import { errorMessage } from '../../util/errors.js';
import { resolveOneJob } from '../selectors.js';
import { refuseSelector } from './jobs.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager logs ID [--step N] [--follow]`: the job's log (what its steps printed), or one
// step's own Log file. --follow prints new output as it is written and returns when the job ends.

export async function logsCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  if (args.positionals.length !== 1) {
    out.error('usage: jobmanager logs ID [--step N] [--follow]');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    let id: string;
    try {
      id = await resolveOneJob(handle.store, args.positionals[0]);
    } catch (err) {
      return refuseSelector(err, out);
    }
    const record = args.follow ? await placed(handle.store, id, args.out) : await handle.store.getJob(id);
    if (!record) {
      out.error(`no job with id ${id}; \`jobmanager jobs\` lists the known ones`);
      return EXIT.usage;
    }
    let name = 'job.log';
    if (args.step !== undefined) {
      const spec = specOfRecord(record);
      const step = spec?.order[Number(args.step) - 1];
      if (!step) {
        out.error(`--step ${args.step}: job ${id} has steps 1 to ${spec?.order.length ?? 0}`);
        return EXIT.usage;
      }
      name = step.log ?? 'job.log';
    }
    const logs = new JobLogs(config, handle.store);
    try {
      return await (args.follow ? followLogs(logs, handle.store, record, name) : printLog(logs, record, name, out));
    } catch (err) {
      const host = record.host?.startsWith('host:') ? ` on ${record.host.slice(5)}` : '';
      out.error(`cannot read the log of job ${id}${host}: ${errorMessage(err)}`);
      return EXIT.unavailable;
    } finally {
      logs.close();
    }
  } finally {
    await handle.release();
  }
}

async function printLog(logs: JobLogs, record: JobRecord, name: string, out: CommandArgs['out']): Promise<number> {
  const place = await logs.place(record, name);
  const text = await logs.read(place);
  if (text) {
    process.stdout.write(text);
  } else if (text === null) {
    const where = place.kind === 'remote' ? ` on ${place.host}` : '';
    const started = place.kind === 'remote' ? isFinal(record.state) : record.state !== 'queued' && record.state !== 'granted';
    out.error(started ? `job ${record.id} wrote no log${where}` : `job ${record.id} has not started${where} yet`);
  }
  return EXIT.ok;
}

/** Prints the log as it is written; returns when the job has ended (and its log is complete) or on Ctrl-C. */
async function followLogs(logs: JobLogs, store: Store, record: JobRecord, name: string): Promise<number> {
  const follower = logs.follow(await logs.place(record, name), (chunk) => process.stdout.write(chunk));
  const stop = new StopSignal();
  const interrupt = () => stop.stop();
  process.once('SIGINT', interrupt);
  try {
    await follower.start();
    while (!stop.stopped && !isFinal((await store.getFields([record.id], ['state']))[0][0] ?? undefined)) await stop.sleep(500);
    if (stop.stopped) follower.close();
    else await follower.finish();
    return EXIT.ok;
  } finally {
    process.removeListener('SIGINT', interrupt);
    follower.close();
  }
}

/**
 * The job's record once it is known where its log will be: a Remote or EC2 job still waiting has
 * no host yet, and following the local job directory in the meantime would show nothing of it.
 */
async function placed(store: Store, id: string, out: CommandArgs['out']): Promise<JobRecord | null> {
  const stop = new StopSignal();
  let told = false;
  const interrupt = () => stop.stop();
  process.once('SIGINT', interrupt);
  try {
    for (;;) {
      const record = await store.getJob(id);
      const remote = record?.classType === 'Remote' || record?.classType === 'EC2';
      if (!record || !remote || record.host || isFinal(record.state) || stop.stopped) return record;
      if (!told) out.error(`job ${id} is ${record.state}, waiting for a host; its log follows once it starts there`);
      told = true;
      await stop.sleep(250);
    }
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
}

import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { readConfig, openStore } from '../context.js';
import { jobDir } from '../../jobs/local-paths.js';
import { isFinal } from '../../store/job-record.js';
import { StopSignal, Wakeup } from '../../stop-signal.js';
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
  const id = args.positionals[0];
  try {
    const record = await handle.store.getJob(id);
    if (!record) {
      out.error(`no job with id ${id}; \`jobmanager jobs\` lists the known ones`);
      return EXIT.usage;
    }
    const dir = jobDir(config.stateDir, id);
    let name = 'job.log';
    if (args.step !== undefined) {
      const step = record.spec?.order[Number(args.step) - 1];
      if (!step) {
        out.error(`--step ${args.step}: job ${id} has steps 1 to ${record.spec?.order.length ?? 0}`);
        return EXIT.usage;
      }
      name = step.log ?? 'job.log';
    }
    const file = join(dir, name);
    let offset = 0;
    const drain = () => {
      if (!existsSync(file)) return;
      const size = statSync(file).size;
      if (size <= offset) return;
      const fd = openSync(file, 'r');
      try {
        const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20));
        const n = readSync(fd, buffer, 0, buffer.length, offset);
        offset += n;
        process.stdout.write(buffer.subarray(0, n));
      } finally {
        closeSync(fd);
      }
    };
    drain();
    if (!args.follow) {
      if (!existsSync(file)) out.error(record.state === 'queued' || record.state === 'granted' ? `job ${id} has not started yet` : `job ${id} wrote no log`);
      return EXIT.ok;
    }
    const stop = new StopSignal();
    const wakeup = new Wakeup();
    mkdirSync(dir, { recursive: true });
    const watcher = watch(dir, () => wakeup.trigger());
    process.once('SIGINT', () => stop.stop());
    try {
      while (!stop.stopped) {
        drain();
        const state = (await handle.store.getFields([id], ['state']))[0][0];
        if (isFinal(state ?? undefined)) {
          drain();
          break;
        }
        await wakeup.wait(1000, stop);
      }
    } finally {
      watcher.close();
    }
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

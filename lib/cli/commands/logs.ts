import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { readConfig, openStore } from '../context.js';
import { jobDir } from '../../runs/paths.js';
import { isFinal } from '../../store/job-record.js';
import { StopSignal, Wakeup } from '../../util/stop-signal.js';
import type { Config } from '../../config/config.js';
import type { Store } from '../../store/store.js';
import type { JobRecord } from '../../store/job-record.js';
import { HostRegistry } from '../../ssh/hosts.js';
import { SshPool } from '../../ssh/pool.js';
import { remoteJobDir } from '../../backends/remote/paths.js';
import { shellPath } from '../../util/shell.js';
import { silentLogger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
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
    const record = args.follow ? await placed(handle.store, id, args.out) : await handle.store.getJob(id);
    if (!record) {
      out.error(`no job with id ${id}; \`jobmanager jobs\` lists the known ones`);
      return EXIT.usage;
    }
    let name = 'job.log';
    if (args.step !== undefined) {
      const step = record.spec?.order[Number(args.step) - 1];
      if (!step) {
        out.error(`--step ${args.step}: job ${id} has steps 1 to ${record.spec?.order.length ?? 0}`);
        return EXIT.usage;
      }
      name = step.log ?? 'job.log';
    }
    if (record.host?.startsWith('host:')) return await remoteLogs(config, handle.store, record, name, args);
    const dir = jobDir(config.stateDir, id);
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

/** A Remote job's log, read on its host over SSH (followed with tail -f until the job ends). */
async function remoteLogs(config: Config, store: Store, record: JobRecord, name: string, args: CommandArgs): Promise<number> {
  const hosts = new HostRegistry(config, store);
  await hosts.refresh(true);
  const pool = new SshPool(hosts, config, silentLogger);
  const host = record.host!.slice(5);
  const path = `${remoteJobDir({ deployment: config.deployment, storeId: await store.storeId() }, host, record.id, record.spec)}/${name}`;
  try {
    const ssh = pool.connection(host);
    if (!args.follow) {
      const result = await ssh.exec(`cat ${shellPath(path)} 2>/dev/null`);
      process.stdout.write(result.stdout);
      if (result.code !== 0) args.out.error(isFinal(record.state) ? `job ${record.id} wrote no log on ${host}` : `job ${record.id} has not started on ${host} yet`);
      return EXIT.ok;
    }
    let received = 0;
    const stream = await ssh.stream(`exec tail -c +1 -F ${shellPath(path)} 2>/dev/null`, (chunk) => {
      received += chunk.length;
      process.stdout.write(chunk);
    });
    const stop = new StopSignal();
    process.once('SIGINT', () => stop.stop());
    while (!stop.stopped && !isFinal((await store.getFields([record.id], ['state']))[0][0] ?? undefined)) await stop.sleep(500);
    stream.close();
    await stream.ended;
    // The job has ended, so its log is complete: print what the stream had not brought yet.
    const rest = await ssh.exec(`tail -c +${received + 1} ${shellPath(path)} 2>/dev/null`);
    process.stdout.write(rest.stdout);
    return EXIT.ok;
  } catch (err) {
    args.out.error(`cannot read the log of job ${record.id} on ${host}: ${errorMessage(err)}`);
    return EXIT.unavailable;
  } finally {
    pool.closeAll();
  }
}

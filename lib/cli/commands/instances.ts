import { readConfig, openStore } from '../context.js';
import { age, table } from '../output.js';
import { instanceHostName } from '../../backends/ec2/instances.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager instances`: the EC2 instances this deployment launched: state, the job on each,
// age, address, type and image.

export async function instancesCommand(args: CommandArgs): Promise<number> {
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    const { store } = handle;
    const records = (await store.instances()).sort((a, b) => a.requestedAt - b.requestedAt);
    const rows = await Promise.all(records.map(async (r) => ({
      ...r,
      jobs: r.instanceId ? await store.slotHolders(`host:${instanceHostName(r.instanceId)}`) : [],
    })));
    if (args.out.json) {
      args.out.data({ instances: rows.map(({ token, instanceId, state, jobs, requestedAt, readyAt, address, instanceType, imageId, lastError }) => ({ instanceId, state, jobs, requestedAt, readyAt, address, instanceType, imageId, lastError, clientToken: token })) });
    } else if (rows.length === 0) {
      args.out.line(`no EC2 instances (at most ${config.ec2.maxInstances} at once; they are launched for EC2 jobs)`);
    } else {
      args.out.line(table(
        ['INSTANCE', 'STATE', 'JOB', 'AGE', 'ADDRESS', 'TYPE', 'IMAGE', 'NOTE'],
        rows.map((r) => [r.instanceId ?? '(requested)', r.state === 'ready' && r.jobs.length === 0 ? 'idle' : r.state, r.jobs.join(' ') || '-', age(r.requestedAt), r.address, r.instanceType, r.imageId, r.lastError ?? '']),
        [20, 12, 12, 8, 16, 12, 22, 60],
      ));
    }
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

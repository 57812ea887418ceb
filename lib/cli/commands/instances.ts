import { readConfig, openStore } from '../context.js';
import { age, table } from '../output.js';
import { instanceHostName } from '../../backends/ec2/instances.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager instances`: the EC2 instances this deployment launched: state (idle: ready with no
// job, and since when), the jobs on each and its slots, spot or on-demand, age, address, type and
// image.

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
    const shown = (r: (typeof rows)[number]) => (r.state === 'ready' && r.jobs.length === 0 ? 'idle' : r.state);
    // Idle since when, from the provisioner's record; an instance holding a job is not idle, even
    // in the moment before the provisioner's next look clears its idleSince.
    const idleSince = (r: (typeof rows)[number]) => ((r.state === 'ready' || r.state === 'retiring') && r.jobs.length === 0 ? r.idleSince : null);
    if (args.out.json) {
      args.out.data({
        instances: rows.map((r) => ({
          instanceId: r.instanceId, state: r.state, shownState: shown(r), jobs: r.jobs, slots: r.slots ?? 1, spot: r.spot ?? false,
          idleSince: idleSince(r), requestedAt: r.requestedAt, readyAt: r.readyAt,
          address: r.address, instanceType: r.instanceType, imageId: r.imageId, subnetId: r.subnetId ?? null, lastError: r.lastError ?? r.lostReason ?? null, clientToken: r.token,
        })),
      });
    } else if (rows.length === 0) {
      args.out.line(`no EC2 instances (at most ${config.ec2.maxInstances} at once; they are launched for EC2 jobs)`);
    } else {
      args.out.line(table(
        ['INSTANCE', 'STATE', 'IDLE FOR', 'JOBS', 'SLOTS', 'MARKET', 'AGE', 'ADDRESS', 'TYPE', 'IMAGE', 'NOTE'],
        rows.map((r) => [
          r.instanceId ?? '(requested)', shown(r), idleSince(r) === null ? '-' : age(idleSince(r)!),
          r.jobs.join(' ') || '-', `${r.jobs.length}/${r.slots ?? 1}`, r.spot ? 'spot' : 'on-demand', age(r.requestedAt), r.address, r.instanceType, r.imageId,
          r.lostReason ?? r.lastError ?? '',
        ]),
        [20, 12, 9, 16, 6, 9, 8, 16, 12, 22, 60],
      ));
    }
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

import { readConfig, openStore } from '../context.js';
import { age, table } from '../output.js';
import { HostRegistry } from '../../ssh/hosts.js';
import { probeHost } from '../../ssh/probe.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager hosts`: every SSH host, reachable or not (tried now, with the same host key check
// the actors use), marked down or not, slots used of total, and the jobs running there.

interface HostRow {
  name: string;
  address: string;
  reachable: boolean;
  error: string | null;
  state: string;
  since: number | null;
  slots: { used: number; total: number };
  jobs: string[];
}

export async function hostsCommand(args: CommandArgs): Promise<number> {
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    const { store } = handle;
    const registry = new HostRegistry(config, store);
    await registry.refresh(true);
    const hosts = registry.all();
    const rows: HostRow[] = await Promise.all(hosts.map(async (host) => {
      const [jobs, error] = await Promise.all([store.slotHolders(`host:${host.name}`), probeHost(host, config)]);
      const state = registry.state(host.name);
      return {
        name: host.name,
        address: `${host.username}@${host.hostname}:${host.port}${host.adhoc ? ' (from a job file)' : ''}`,
        reachable: error === null,
        error,
        state: state?.state ?? 'up',
        since: state?.since ?? null,
        slots: { used: jobs.length, total: host.slots },
        jobs: jobs.sort((a, b) => Number(a) - Number(b)),
      };
    }));
    if (args.out.json) {
      args.out.data({ hosts: rows });
    } else if (rows.length === 0) {
      args.out.line('no SSH hosts: list them under Hosts in the config (see config/default.yaml)');
    } else {
      args.out.line(table(
        ['NAME', 'ADDRESS', 'REACHABLE', 'STATE', 'SLOTS', 'JOBS'],
        rows.map((r) => [r.name, r.address, r.reachable ? 'yes' : `no: ${r.error}`, r.state === 'down' ? `down for ${age(r.since)}` : 'up', `${r.slots.used}/${r.slots.total}`, r.jobs.join(' ')]),
        [12, 40, 60, 14, 7, 40],
      ));
    }
    return rows.every((r) => r.reachable) ? EXIT.ok : EXIT.unavailable;
  } finally {
    await handle.release();
  }
}

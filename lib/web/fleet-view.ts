import type { Config } from '../config/config.js';
import { nodeLocation } from '../store/keys.js';
import type { Store } from '../store/store.js';
import type { Location } from '../store/keys.js';
import { HostRegistry } from '../ssh/hosts.js';
import { probeHost } from '../ssh/probe.js';
import { instanceHostName, type InstanceRecord } from '../backends/ec2/instances.js';

// What the hosts page, the location table and the metrics show of where jobs run: the locations
// and their slots, the SSH hosts (up or down as the fetcher judged them; reachable as a probe
// found, at most every PROBE_MS and only while someone looks), and the EC2 instances.

const PROBE_MS = 30_000;

export interface LocationInfo {
  location: Location;
  /** Slot count; null for locations whose jobs take the slots of others (any, ec2:…). */
  slots: number | null;
}

export interface HostRow {
  name: string;
  address: string;
  adhoc: boolean;
  state: 'up' | 'down';
  since: number | null;
  reason: string | null;
  /** null: not probed yet; else the last probe's finding. */
  probe: { at: number; error: string | null } | null;
  slots: { used: number; total: number };
  jobs: string[];
}

export interface InstanceRow extends InstanceRecord {
  /** As `jobmanager instances` shows it: a ready instance without a job is idle. */
  shownState: string;
  jobs: string[];
}

export class FleetView {
  private readonly registry: HostRegistry;
  private readonly probes = new Map<string, { at: number; error: string | null }>();
  private readonly probing = new Set<string>();

  constructor(
    private readonly config: Config,
    private readonly store: Store,
  ) {
    this.registry = new HostRegistry(config, store);
  }

  async locations(): Promise<LocationInfo[]> {
    await this.registry.refresh();
    const hosts = this.registry.all();
    // Each node's local slots, and `local`: the queue that any node's slots draw from.
    const nodes = await this.store.nodes();
    const list: LocationInfo[] = [{ location: 'local', slots: null }];
    for (const [name, lease] of [...nodes].sort(([a], [b]) => a.localeCompare(b))) list.push({ location: nodeLocation(name), slots: lease.localMaxJobs });
    for (const host of hosts) list.push({ location: `host:${host.name}`, slots: host.slots });
    if (hosts.some((h) => !h.adhoc && !h.queues)) list.push({ location: 'any', slots: null });
    for (const location of await this.store.ec2Locations()) list.push({ location, slots: null });
    return list;
  }

  /** The hosts; with `probe`, hosts not probed for PROBE_MS are probed in the background. */
  async hosts(probe: boolean): Promise<HostRow[]> {
    await this.registry.refresh();
    const hosts = this.registry.all();
    const holders = await Promise.all(hosts.map((h) => this.store.slotHolders(`host:${h.name}`)));
    return hosts.map((host, i) => {
      const state = this.registry.state(host.name);
      if (probe) this.probeLater(host.name);
      return {
        name: host.name,
        address: `${host.username}@${host.hostname}:${host.port}`,
        adhoc: host.adhoc,
        state: state?.state ?? 'up',
        since: state?.since ?? null,
        reason: state?.reason ?? null,
        probe: this.probes.get(host.name) ?? null,
        slots: { used: holders[i].length, total: host.slots },
        jobs: holders[i],
      };
    });
  }

  private probeLater(name: string): void {
    const last = this.probes.get(name);
    if (this.probing.has(name) || (last && Date.now() - last.at < PROBE_MS)) return;
    const host = this.registry.get(name);
    if (!host) return;
    this.probing.add(name);
    void probeHost(host, this.config).then((error) => {
      this.probes.set(name, { at: Date.now(), error });
      this.probing.delete(name);
    });
  }

  async instances(): Promise<InstanceRow[]> {
    const records = (await this.store.instances()).sort((a, b) => a.requestedAt - b.requestedAt);
    return Promise.all(records.map(async (r) => {
      const jobs = r.instanceId ? await this.store.slotHolders(`host:${instanceHostName(r.instanceId)}`) : [];
      return { ...r, jobs, shownState: r.state === 'ready' && jobs.length === 0 ? 'idle' : r.state };
    }));
  }
}

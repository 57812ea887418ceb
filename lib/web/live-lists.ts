import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { EventBatch, EventHub } from './event-hub.js';
import type { FleetView } from './fleet-view.js';
import { matches, type JobFilter } from './job-filter.js';
import type { SseStream } from './sse.js';
import { hostsTable, instancesTable, jobRow, locationsTable } from './views.js';
import type { Html } from './html.js';

// The browsers that show a list, and what they are sent:
//  - jobs lists: for each batch from the hub, the changed jobs' rows (rendered once per batch,
//    whatever the number of browsers), each browser getting those its filter keeps and the ids
//    of those it does not (which it drops if it shows them); the location table, at most once a
//    second while jobs change;
//  - hosts pages: the host and instance tables, at most every 2 s while jobs change and every
//    10 s anyway (host states and probes change without an Events entry).
// Nothing is read for a kind of list that nobody shows.

const LOCATIONS_EVERY_MS = 1000;
const HOSTS_EVERY_MS = 2000;
const HOSTS_ANYWAY_MS = 10_000;

interface JobsViewer {
  sse: SseStream;
  filter: JobFilter;
}

export class LiveLists {
  private readonly jobsViewers = new Set<JobsViewer>();
  private readonly hostsViewers = new Set<SseStream>();
  private locationsDue: NodeJS.Timeout | null = null;
  private hostsDue: NodeJS.Timeout | null = null;
  private readonly hostsTimer: NodeJS.Timeout;
  private readonly onBatch = (batch: EventBatch) => this.batch(batch);

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly fleet: FleetView,
    private readonly hub: EventHub,
    private readonly csrf: string,
    private readonly log: Logger,
  ) {
    hub.on('batch', this.onBatch);
    this.hostsTimer = setInterval(() => this.hostsViewers.size && void this.sendHosts(), HOSTS_ANYWAY_MS);
    this.hostsTimer.unref();
  }

  get size(): number {
    return this.jobsViewers.size + this.hostsViewers.size;
  }

  addJobsViewer(sse: SseStream, filter: JobFilter): void {
    const viewer = { sse, filter };
    this.jobsViewers.add(viewer);
    this.hub.followRows();
    sse.onClose(() => {
      if (this.jobsViewers.delete(viewer)) this.hub.unfollowRows();
    });
  }

  addHostsViewer(sse: SseStream): void {
    this.hostsViewers.add(sse);
    sse.onClose(() => this.hostsViewers.delete(sse));
  }

  private batch(batch: EventBatch): void {
    if (this.jobsViewers.size) {
      const rendered = new Map<string, Html>();
      const now = Date.now();
      for (const viewer of this.jobsViewers) {
        const rows: { id: string; html: string | null }[] = [];
        for (const [id, job] of batch.rows) {
          if (!job || !matches(viewer.filter, job)) {
            rows.push({ id, html: null });
            continue;
          }
          if (!rendered.has(id)) rendered.set(id, jobRow(job, this.csrf, now));
          rows.push({ id, html: rendered.get(id)!.text });
        }
        viewer.sse.send('rows', rows);
      }
      this.locationsDue ??= setTimeout(() => void this.sendLocations(), LOCATIONS_EVERY_MS);
    }
    if (this.hostsViewers.size) this.hostsDue ??= setTimeout(() => void this.sendHosts(), HOSTS_EVERY_MS);
  }

  /** The location table, as the jobs page shows it. */
  async locationsHtml(): Promise<Html> {
    const locations = await this.fleet.locations();
    return locationsTable(await this.store.queueDepths(locations.map((l) => l.location)), locations);
  }

  /** The host and instance tables, as the hosts page shows them (probing hosts as it goes). */
  async hostsHtml(): Promise<{ hosts: Html; instances: Html }> {
    const [hosts, instances] = await Promise.all([this.fleet.hosts(true), this.fleet.instances()]);
    return { hosts: hostsTable(hosts), instances: instancesTable(instances, this.config.ec2.maxInstances) };
  }

  private async sendLocations(): Promise<void> {
    try {
      const table = (await this.locationsHtml()).text;
      for (const viewer of this.jobsViewers) viewer.sse.send('locations', table);
    } catch (err) {
      this.log.debug(`web: location table: ${errorMessage(err)}`);
    } finally {
      this.locationsDue = null;
    }
  }

  private async sendHosts(): Promise<void> {
    try {
      const { hosts, instances } = await this.hostsHtml();
      for (const sse of this.hostsViewers) sse.send('hosts', { hosts: hosts.text, instances: instances.text });
    } catch (err) {
      this.log.debug(`web: host tables: ${errorMessage(err)}`);
    } finally {
      this.hostsDue = null;
    }
  }

  close(): void {
    this.hub.off('batch', this.onBatch);
    clearInterval(this.hostsTimer);
    if (this.locationsDue) clearTimeout(this.locationsDue);
    if (this.hostsDue) clearTimeout(this.hostsDue);
  }
}

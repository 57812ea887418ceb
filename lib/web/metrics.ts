import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobEvent, Store } from '../store/store.js';
import { endsRun, type EventBatch } from './event-hub.js';
import type { FleetView } from './fleet-view.js';
import type { JobTally } from './job-tally.js';

// Prometheus metrics at /metrics (prom-client), on the web page's listener and behind its token.
// Cheap by design: jobs by state come from the tally (job-tally.ts), the histograms are observed
// from the Events stream as it passes (event-hub.ts), and a scrape reads a few counters from
// Redis (queue lengths, slot sets, host and instance hashes) and one PING.

const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400];
const RUN_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400];

export class WebMetrics {
  readonly registry = new Registry();
  private readonly jobs = new Gauge({ name: 'jobmanager_jobs', help: 'Jobs by state and ClassType', labelNames: ['state', 'class'], registers: [this.registry] });
  private readonly queues = new Gauge({ name: 'jobmanager_queue_length', help: 'Entries in Job_Queue (intake), Granted_Queue, Running_Queue and Delayed', labelNames: ['queue'], registers: [this.registry] });
  private readonly waiting = new Gauge({ name: 'jobmanager_queue_depth', help: 'Jobs waiting for a slot at a location (Job_Queue:<location>)', labelNames: ['location'], registers: [this.registry] });
  private readonly slotsUsed = new Gauge({ name: 'jobmanager_slots_used', help: 'Slots held by jobs at a location', labelNames: ['location'], registers: [this.registry] });
  private readonly slotsTotal = new Gauge({ name: 'jobmanager_slots_total', help: 'Slots of a location (LocalMaxJobs, a host\'s Slots)', labelNames: ['location'], registers: [this.registry] });
  private readonly waitTime = new Histogram({ name: 'jobmanager_job_queue_to_start_seconds', help: 'Time from queue to the start of a job\'s first run', labelNames: ['class'], buckets: WAIT_BUCKETS, registers: [this.registry] });
  private readonly runTime = new Histogram({ name: 'jobmanager_job_run_seconds', help: 'Run time of ended runs, by outcome (retried: failed with a retry left, or interrupted)', labelNames: ['class', 'outcome'], buckets: RUN_BUCKETS, registers: [this.registry] });
  private readonly restarts = new Counter({ name: 'jobmanager_actor_restarts_total', help: 'Actors (manager, starter, fetcher) restarted by the supervisor after they died', labelNames: ['actor'], registers: [this.registry] });
  private readonly hosts = new Gauge({ name: 'jobmanager_hosts', help: 'SSH hosts (configured, named by job files, EC2 instances) by state', labelNames: ['state'], registers: [this.registry] });
  private readonly hostsDown = new Gauge({ name: 'jobmanager_hosts_down', help: 'SSH hosts marked down (unreachable for HostDownAfter)', registers: [this.registry] });
  private readonly instances = new Gauge({ name: 'jobmanager_ec2_instances', help: 'EC2 instances this deployment launched, by state', labelNames: ['state'], registers: [this.registry] });
  private readonly redisRtt = new Gauge({ name: 'jobmanager_redis_roundtrip_seconds', help: 'Round trip of a PING to Redis, measured at this scrape', registers: [this.registry] });
  private readonly clients = new Gauge({ name: 'jobmanager_web_clients', help: 'Browsers following live updates (Server-Sent Events streams)', registers: [this.registry] });

  constructor(
    private readonly store: Store,
    private readonly tally: JobTally,
    private readonly fleet: FleetView,
    private readonly liveClients: () => number,
  ) {
    collectDefaultMetrics({ register: this.registry });
    for (const actor of ['manager', 'starter', 'fetcher']) this.restarts.inc({ actor }, 0);
  }

  actorRestarted(actor: string): void {
    this.restarts.inc({ actor });
  }

  /** Observes what the batch says: jobs that started, runs that ended; and keeps the tally. */
  observe(batch: EventBatch): void {
    for (const [id, change] of batch.changes) this.tally.update(id, change);
    for (const event of batch.events) {
      if (event.classType !== null) {
        this.observeTimes(event, event.classType);
        continue;
      }
      const job = batch.rows.get(event.job);
      if (!job) continue;
      const at = Number(event.id.split('-')[0]);
      const labels = { class: job.classType };
      if (event.state === 'running' && event.run === 1 && job.queuedAt !== null && job.startedAt !== null) {
        this.waitTime.observe(labels, Math.max(0, job.startedAt - job.queuedAt) / 1000);
      }
      // startedAt is the ended run's (finishRun-5.lua writes it in the same step), unless a newer
      // run started before this read: then the difference is negative and is not a run time.
      if (endsRun(event) && job.startedAt !== null && at >= job.startedAt) {
        this.runTime.observe({ ...labels, outcome: event.state === 'queued' ? 'retried' : event.state }, (at - job.startedAt) / 1000);
      }
    }
  }

  /** A run's start or end whose event says its class and times (markRunning-N.lua, finishRun-N.lua). */
  private observeTimes(event: JobEvent, classType: string): void {
    if (event.waited !== null) this.waitTime.observe({ class: classType }, event.waited / 1000);
    if (endsRun(event) && event.took !== null) {
      this.runTime.observe({ class: classType, outcome: event.state === 'queued' ? 'retried' : event.state }, event.took / 1000);
    }
  }

  /** Reads what a scrape shows now, then renders it in the Prometheus text format. */
  async render(): Promise<string> {
    void this.tally.refresh();
    const locations = await this.fleet.locations();
    const [depths, rtt, hosts, instances] = await Promise.all([
      this.store.queueDepths(locations.map((l) => l.location)),
      this.store.roundTripMs(),
      this.fleet.hosts(false),
      this.fleet.instances(),
    ]);
    this.jobs.reset();
    for (const [state, cls, n] of this.tally.entries()) this.jobs.set({ state, class: cls }, n);
    for (const queue of ['Job_Queue', 'Granted_Queue', 'Running_Queue', 'Delayed'] as const) this.queues.set({ queue }, depths[queue]);
    for (const gauge of [this.waiting, this.slotsUsed, this.slotsTotal]) gauge.reset();
    depths.locations.forEach((load, i) => {
      this.waiting.set({ location: load.location }, load.waiting);
      const slots = locations[i].slots;
      if (slots !== null) {
        this.slotsUsed.set({ location: load.location }, load.used);
        this.slotsTotal.set({ location: load.location }, slots);
      }
    });
    this.hosts.reset();
    this.hosts.set({ state: 'up' }, hosts.filter((h) => h.state === 'up').length);
    this.hosts.set({ state: 'down' }, hosts.filter((h) => h.state === 'down').length);
    this.hostsDown.set(hosts.filter((h) => h.state === 'down').length);
    this.instances.reset();
    const byState = new Map<string, number>();
    for (const i of instances) byState.set(i.shownState, (byState.get(i.shownState) ?? 0) + 1);
    for (const [state, n] of byState) this.instances.set({ state }, n);
    this.redisRtt.set(rtt / 1000);
    this.clients.set(this.liveClients());
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

import { randomUUID } from 'node:crypto';
import { NODE_LEASE_MS } from '../../nodes/lease.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import type { Config } from '../../config/config.js';
import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import { formatDuration } from '../../util/duration.js';
import type { StopSignal } from '../../util/stop-signal.js';
import type { Store } from '../../store/store.js';
import { SshConnection } from '../../ssh/connection.js';
import { ec2KnownHosts } from '../../ssh/hosts.js';
import { knownHostsName } from '../../ssh/known-hosts.js';
import { Ec2Catalog } from './catalog.js';
import { errorCode, loadEc2, RETRYABLE, type Ec2Sdk } from './client.js';
import { hostKeysFromConsole } from './console-keys.js';
import { instanceHostName, type InstanceRecord } from './instances.js';
import { CAPACITY_ERRORS, DEPLOYMENT_TAG, launchChoices, runInstancesInput, TOKEN_TAG } from './launch-request.js';
import { placeJobsAgain } from './lost-instance.js';
import { InstanceTending } from './tending.js';

export { DEPLOYMENT_TAG, TOKEN_TAG } from './launch-request.js';

// The EC2 provisioner, run by the manager beside its own loop (it never blocks it: every EC2 call
// is awaited here, not there). It keeps the deployment's instances matched to the EC2 jobs
// waiting: launches instances while jobs wait and the slots of ready or coming instances cannot
// take them (never more than MaxInstances, counting only this deployment's records and tag),
// readies new ones (host key from the console, SSH answering, the instance's watchdog started),
// renews each instance's lease (tending.ts), places again at once the jobs of an instance EC2
// says is going or gone (lost-instance.ts), and terminates those idle for IdleTimeout. Instances
// carrying the deployment's tag that no record explains are terminated: no orphan keeps running.

const STEP_MS = 1000;
const ORPHAN_SWEEP_MS = 60_000;
/** An instance may be invisible to DescribeInstances this long after RunInstances. */
const VISIBILITY_GRACE_MS = 60_000;
/** A retiring instance waits this long (registries refresh every 2 s) before it is terminated. */
const RETIRE_SETTLE_MS = 6000;
/** EC2 states in which an instance runs no job any more, or soon will not. */
const GOING = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);

interface Backoff {
  until: number;
  delay: number;
  reason: string;
  failures: number;
}

export class Provisioner {
  private ec2!: EC2Client;
  private sdk!: Ec2Sdk;
  private catalog!: Ec2Catalog;
  private readonly readying = new Set<string>();
  private readonly backoff = new Map<string, Backoff>();
  private readonly tending: InstanceTending;
  private orphansSweptAt = 0;
  private aliveTagged = 0;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly wakeManager: () => void,
  ) {
    this.tending = new InstanceTending(config, log);
  }

  async run(stop: StopSignal): Promise<void> {
    let holder: string | null = null;
    while (!stop.stopped) {
      try {
        // Several supervisors (nodes) share the fleet: only the holder of the EC2 lease launches,
        // readies and ends instances; another node takes the lease when it lapses (lib/nodes/lease.ts).
        const now = await this.store.ec2Lease('hold', NODE_LEASE_MS);
        if (now !== holder) this.log[this.config.ec2.imageId ? 'info' : 'debug'](now === this.store.node ? `EC2: node ${now} holds the EC2 lease: it provisions EC2 and ends idle instances` : `EC2: node ${now} provisions EC2 (it holds the EC2 lease)`);
        holder = now;
        if (holder === this.store.node) await this.step();
      } catch (err) {
        this.log.warn(`EC2: ${errorMessage(err)}; trying again`);
      }
      await stop.sleep(STEP_MS);
    }
    this.tending.close();
    if (holder === this.store.node) await this.store.ec2Lease('release', NODE_LEASE_MS).catch(() => {});
  }

  private async step(): Promise<void> {
    const locations = await this.store.ec2Locations();
    let records = await this.store.instances();
    // Without EC2 in the config and nothing launched, EC2 is not asked anything (nor loaded).
    if (records.length === 0 && locations.length === 0 && !this.config.ec2.imageId) return;
    if (!this.sdk) {
      ({ sdk: this.sdk, client: this.ec2 } = await loadEc2(this.config.ec2));
      this.catalog = new Ec2Catalog(this.sdk, this.ec2, this.log);
    }
    const described = records.length || Date.now() - this.orphansSweptAt >= ORPHAN_SWEEP_MS ? await this.describe() : [];
    // What counts against MaxInstances: this deployment's instances, orphans included.
    this.aliveTagged = described.filter((i) => i.State?.Name !== 'terminated').length;
    if (Date.now() - this.orphansSweptAt >= ORPHAN_SWEEP_MS) await this.terminateOrphans(records, described);
    records = await this.observe(records, described);
    for (const [token, notice] of this.tending.takeNotices()) {
      const record = records.find((r) => r.token === token);
      if (record) await this.spotNotice(record, notice);
    }
    this.tending.tend(records.filter((r) => r.state === 'ready' || r.state === 'retiring'));
    await this.launchForDemand(records, locations);
    await this.retireIdle(records, locations);
  }

  /** Every instance carrying this deployment's tag, in any state. */
  private async describe(): Promise<Instance[]> {
    const instances: Instance[] = [];
    let NextToken: string | undefined;
    do {
      const page = await this.ec2.send(new this.sdk.DescribeInstancesCommand({ Filters: [{ Name: `tag:${DEPLOYMENT_TAG}`, Values: [this.config.deployment] }], NextToken }));
      for (const reservation of page.Reservations ?? []) instances.push(...(reservation.Instances ?? []));
      NextToken = page.NextToken;
    } while (NextToken);
    return instances;
  }

  /** Brings each record up to date with what EC2 says; returns the records still alive. */
  private async observe(records: InstanceRecord[], described: Instance[]): Promise<InstanceRecord[]> {
    const now = Date.now();
    const alive: InstanceRecord[] = [];
    for (const record of records) {
      const instance = (record.instanceId ? described.find((i) => i.InstanceId === record.instanceId) : undefined) ?? described.find((i) => i.Tags?.some((t) => t.Key === TOKEN_TAG && t.Value === record.token));
      const state = instance?.State?.Name;
      if (record.state === 'requested') {
        if (instance?.InstanceId) {
          await this.update(record, { instanceId: instance.InstanceId, state: 'pending', launchedAt: now });
        } else if (now - record.changedAt > 5000) {
          // The launch may have been cut short by a crash: ask again with the same token.
          await this.requestInstance(record);
        }
        alive.push(record);
        continue;
      }
      if (record.state === 'lost' || (state && GOING.has(state) && record.state !== 'terminating')) {
        // EC2 is the authority on what no longer exists: its jobs go elsewhere now.
        await this.lose(record, record.lostReason ?? `${record.instanceId} is ${state}${instance?.StateReason?.Message ? ` (${instance.StateReason.Message})` : ''}`, false);
        if (state !== 'terminated') await this.terminate(record, `it is lost (${record.lostReason})`);
      }
      if (state === 'terminated' || (!instance && now - record.requestedAt > VISIBILITY_GRACE_MS && record.state !== 'pending')) {
        if (record.state !== 'terminating' && record.state !== 'lost') this.log.warn(`EC2: instance ${record.instanceId} is gone (${state ?? 'not found'})`);
        await this.forget(record);
        continue;
      }
      if ((record.state === 'pending' || record.state === 'booting') && state === 'running') {
        const address = instance?.PublicIpAddress ?? instance?.PrivateIpAddress ?? null;
        if (address && record.state === 'pending') await this.update(record, { state: 'booting', address });
        if (record.state === 'booting') this.ready(record);
      }
      // Counted from when this deployment learned of the instance: a supervisor that was down
      // meanwhile (kill -9 in the middle of RunInstances) must not hold it against the instance.
      if ((record.state === 'pending' || record.state === 'booting') && now - (record.launchedAt ?? record.requestedAt) > this.config.ec2.readyTimeoutMs) {
        await this.terminate(record, `it did not answer over SSH within ${formatDuration(this.config.ec2.readyTimeoutMs)} of its launch${record.lastError ? ` (${record.lastError})` : ''}`);
      }
      alive.push(record);
    }
    return alive;
  }

  /**
   * The instance's jobs placed again (lost-instance.ts). With `killFirst` (a spot notice: the
   * instance still answers), its runs are killed there before, so that no job runs twice at once.
   */
  private async lose(record: InstanceRecord, reason: string, killFirst: boolean): Promise<void> {
    if (!record.instanceId) return;
    const first = record.state !== 'lost';
    if (first) await this.update(record, { state: 'lost', lostReason: reason, idleSince: null });
    if (killFirst) await this.tending.killRuns(record);
    this.tending.drop(record.token);
    const placed = await placeJobsAgain(this.store, this.log, instanceHostName(record.instanceId), reason, this.config.retryBackoffMs);
    if (first || placed.length) this.log.warn(`EC2: instance ${record.instanceId} lost (${reason}); ${placed.length ? `job${placed.length > 1 ? 's' : ''} ${placed.join(' ')} placed again` : 'it had no job'}`);
    if (placed.length) this.wakeManager();
  }

  /** A spot instance's watchdog read an interruption notice: its jobs go elsewhere before it does. */
  private async spotNotice(record: InstanceRecord, notice: string): Promise<void> {
    if (record.state !== 'ready' && record.state !== 'retiring') return;
    await this.lose(record, `${record.instanceId} got a spot interruption notice (${notice})`, true);
    await this.terminate(record, 'its spot capacity is being reclaimed');
  }

  /** Checks a running instance's host key (from its console) and SSH, without blocking the loop. */
  private ready(record: InstanceRecord): void {
    if (this.readying.has(record.token)) return;
    this.readying.add(record.token);
    void (async () => {
      try {
        const keys = await this.consoleHostKeys(record.instanceId!);
        if (keys.length) this.trustKeys(record.address!, keys);
        else if (this.config.hostKeyPolicy !== 'accept-new') throw new Error('its console output shows no SSH host keys yet (HostKeyPolicy: accept-new would trust the first key seen)');
        // Its first renewal starts its watchdog: from now on it guards itself.
        await this.tending.tendNow(record);
        // The keys go in its record too: every node reaches it, not only the one that provisions
        // (HostRegistry writes them into each node's EC2 known_hosts file).
        const hostKeys = keys.map((k) => `${knownHostsName(record.address!, this.config.ec2.port)} ${k.type} ${k.key}`);
        await this.update(record, { state: 'ready', readyAt: Date.now(), idleSince: Date.now(), lastError: null, ...(hostKeys.length ? { hostKeys } : {}) });
        this.log.info(`EC2: instance ${record.instanceId} (${record.address}, ${record.slots} slot${record.slots > 1 ? 's' : ''}${record.spot ? ', spot' : ''}) is ready, ${formatDuration(Date.now() - record.requestedAt)} after its launch`);
        this.wakeManager();
      } catch (err) {
        this.tending.drop(record.token);
        await this.update(record, { lastError: errorMessage(err) });
      } finally {
        this.readying.delete(record.token);
      }
    })();
  }

  private async consoleHostKeys(instanceId: string): Promise<{ type: string; key: string }[]> {
    const reply = await this.ec2.send(new this.sdk.GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
    return hostKeysFromConsole(Buffer.from(reply.Output ?? '', 'base64').toString('utf8'));
  }

  /** Writes the keys read from the console into the EC2 known_hosts file (replacing that address's). */
  private trustKeys(address: string, keys: { type: string; key: string }[]): void {
    const file = ec2KnownHosts(this.config);
    const name = knownHostsName(address, this.config.ec2.port);
    const kept = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((line) => line && !line.startsWith(`${name} `)) : [];
    writeFileSync(file, [...kept, ...keys.map((k) => `${name} ${k.type} ${k.key}`)].join('\n') + '\n', { mode: 0o600 });
  }

  /** Launches instances for EC2 jobs that wait and that no free or coming slot will take. */
  private async launchForDemand(records: InstanceRecord[], locations: string[]): Promise<void> {
    for (const location of locations) {
      const waiting = await this.store.waitingCount(location);
      if (waiting === 0) continue;
      const here = records.filter((r) => r.location === location);
      const coming = here.filter((r) => ['requested', 'pending', 'booting'].includes(r.state)).reduce((sum, r) => sum + (r.slots ?? 1), 0);
      const ready = here.filter((r) => r.state === 'ready');
      const used = await Promise.all(ready.map((r) => this.slotsUsed(r)));
      const free = ready.reduce((sum, r, i) => sum + Math.max(0, (r.slots ?? 1) - used[i]), 0);
      const room = this.config.ec2.maxInstances - Math.max(records.filter((r) => r.state !== 'lost' && r.state !== 'terminating').length, this.aliveTagged);
      const backoff = this.backoff.get(location);
      if (waiting - coming - free <= 0 || room <= 0 || (backoff && Date.now() < backoff.until)) continue;
      const [, imageId, instanceType] = location.split(':');
      const perInstance = this.config.ec2.slots ?? (await this.catalog.vcpusOf(instanceType));
      const wanted = Math.min(Math.ceil((waiting - coming - free) / perInstance), room);
      for (let i = 0; i < wanted; i++) {
        const [choice] = launchChoices(this.config, instanceType);
        const record = await this.newRecord(location, imageId, choice.instanceType, choice.subnetId);
        records.push(record);
        if (!(await this.requestInstance(record))) break;
      }
    }
  }

  /** A launch record, saved before RunInstances is called: after a crash the same token is used again. */
  private async newRecord(location: string, imageId: string, instanceType: string, subnetId: string | null): Promise<InstanceRecord> {
    const record: InstanceRecord = {
      token: randomUUID(), instanceId: null, state: 'requested', location, imageId, instanceType, subnetId,
      slots: this.config.ec2.slots ?? (await this.catalog.vcpusOf(instanceType)), spot: this.config.ec2.spot,
      requestedAt: Date.now(), launchedAt: null, address: null, readyAt: null, idleSince: null, changedAt: Date.now(), lastError: null,
    };
    await this.store.saveInstance(record);
    return record;
  }

  /**
   * RunInstances with the record's ClientToken; on a capacity error, the next type or subnet
   * (launch-request.ts), each under a new record and token. False when EC2 said no to all (the
   * records are dropped) or did not answer (the record stays, to be asked again).
   */
  private async requestInstance(first: InstanceRecord): Promise<boolean> {
    let record = first;
    const [, , locationType] = record.location.split(':');
    const choices = launchChoices(this.config, locationType);
    for (;;) {
      try {
        const rootDevice = this.config.ec2.rootVolumeSize ? await this.catalog.rootDeviceOf(record.imageId) : null;
        const reply = await this.ec2.send(new this.sdk.RunInstancesCommand(runInstancesInput(this.config, record, rootDevice)));
        const instanceId = reply.Instances?.[0]?.InstanceId ?? null;
        await this.update(record, { instanceId, state: 'pending', launchedAt: Date.now(), lastError: null });
        this.backoff.delete(record.location);
        this.log.info(`EC2: launched ${instanceId} (${record.instanceType}${record.subnetId ? ` in ${record.subnetId}` : ''}${record.spot ? ', spot' : ''}, ${record.imageId}) for jobs waiting in ${record.location}`);
        return true;
      } catch (err) {
        const code = errorCode(err);
        // An error answer from EC2 means no instance was made for this token: the request is
        // dropped. No answer at all (the network) leaves it unknown: the record stays, and the
        // same token is used again later, so an instance made meanwhile is found, not doubled.
        const answered = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== undefined;
        if (answered) await this.store.removeInstance(record.token);
        const next = choices[choices.findIndex((c) => c.instanceType === record.instanceType && c.subnetId === record.subnetId) + 1];
        if (answered && CAPACITY_ERRORS.has(code) && next) {
          this.log.warn(`EC2: no ${record.instanceType}${record.subnetId ? ` in ${record.subnetId}` : ''} (${code}); trying ${next.instanceType}${next.subnetId ? ` in ${next.subnetId}` : ''}`);
          record = await this.newRecord(record.location, record.imageId, next.instanceType, next.subnetId);
          continue;
        }
        await this.backOff(record.location, code, err);
        return false;
      }
    }
  }

  private async backOff(location: string, code: string, err: unknown): Promise<void> {
    const failures = (this.backoff.get(location)?.failures ?? 0) + 1;
    const delay = Math.min(1000 * 2 ** failures, RETRYABLE.has(code) || CAPACITY_ERRORS.has(code) ? 60_000 : 300_000);
    const reason = `${code}: ${errorMessage(err)}`;
    this.backoff.set(location, { until: Date.now() + delay, delay, reason, failures });
    this.log.warn(`EC2: RunInstances failed (${reason}); trying again in ${formatDuration(delay)}`);
    await this.store.explainWait(location, `waiting for an EC2 instance: RunInstances failed ${failures} time${failures > 1 ? 's' : ''} (${reason}); trying again in ${formatDuration(delay)}`);
  }

  private async slotsUsed(record: InstanceRecord): Promise<number> {
    const [used] = await this.store.slotsUsed([`host:${instanceHostName(record.instanceId!)}`]);
    return used;
  }

  /** Idle instances (no job in any slot): retired (no new grants) after IdleTimeout, then terminated if still idle. */
  private async retireIdle(records: InstanceRecord[], locations: string[]): Promise<void> {
    const now = Date.now();
    for (const record of records) {
      if (record.state !== 'ready' && record.state !== 'retiring') continue;
      const used = await this.slotsUsed(record);
      if (record.state === 'ready') {
        if (used > 0) {
          if (record.idleSince !== null) await this.update(record, { idleSince: null });
        } else if (record.idleSince === null) {
          await this.update(record, { idleSince: now });
        } else if (now - record.idleSince >= this.config.ec2.idleTimeoutMs) {
          const waiting = locations.includes(record.location) ? await this.store.waitingCount(record.location) : 0;
          if (waiting === 0) await this.update(record, { state: 'retiring' });
        }
      } else if (used > 0) {
        await this.update(record, { state: 'ready', idleSince: null });
      } else if (now - record.changedAt >= RETIRE_SETTLE_MS) {
        await this.terminate(record, `idle for ${formatDuration(now - (record.idleSince ?? record.changedAt))}`);
      }
    }
  }

  private async terminate(record: InstanceRecord, why: string): Promise<void> {
    if (!record.instanceId) return;
    this.tending.drop(record.token);
    try {
      await this.ec2.send(new this.sdk.TerminateInstancesCommand({ InstanceIds: [record.instanceId] }));
      this.log.info(`EC2: terminating ${record.instanceId}: ${why}`);
      await this.update(record, { state: 'terminating' });
    } catch (err) {
      if (errorCode(err) === 'InvalidInstanceID.NotFound') await this.forget(record);
      else this.log.warn(`EC2: could not terminate ${record.instanceId} (${errorMessage(err)}); trying again`);
    }
  }

  /** Instances with this deployment's tag that no record explains. */
  private async terminateOrphans(records: InstanceRecord[], described: Instance[]): Promise<void> {
    this.orphansSweptAt = Date.now();
    const known = new Set(records.flatMap((r) => [r.token, r.instanceId ?? '']));
    const orphans = described.filter((i) => {
      const state = i.State?.Name;
      if (state === 'terminated' || state === 'shutting-down') return false;
      const token = i.Tags?.find((t) => t.Key === TOKEN_TAG)?.Value ?? '';
      return !known.has(i.InstanceId ?? '') && !known.has(token);
    });
    if (orphans.length === 0) return;
    const ids = orphans.map((i) => i.InstanceId!);
    this.log.warn(`EC2: terminating ${ids.length} instance(s) with this deployment's tag that no record explains: ${ids.join(' ')}`);
    await this.ec2.send(new this.sdk.TerminateInstancesCommand({ InstanceIds: ids }));
  }

  private async forget(record: InstanceRecord): Promise<void> {
    this.tending.drop(record.token);
    await this.store.removeInstance(record.token);
    if (record.instanceId) await this.store.forgetHostState(instanceHostName(record.instanceId));
    if (record.address) {
      const file = ec2KnownHosts(this.config);
      const name = knownHostsName(record.address, this.config.ec2.port);
      if (existsSync(file)) writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((line) => line && !line.startsWith(`${name} `)).join('\n') + '\n');
    }
  }

  private async update(record: InstanceRecord, changes: Partial<InstanceRecord>): Promise<void> {
    const moved = changes.state !== undefined && changes.state !== record.state;
    Object.assign(record, changes);
    if (moved) record.changedAt = Date.now();
    await this.store.saveInstance(record);
  }
}

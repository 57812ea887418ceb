import type { Config } from '../../config/config.js';
import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import { formatDuration } from '../../util/duration.js';
import { SshConnection } from '../../ssh/connection.js';
import { ec2KnownHosts } from '../../ssh/hosts.js';
import { instanceHostName, type InstanceRecord } from './instances.js';
import { killRunsScript, tendScript, type WatchdogSettings } from './watchdog.js';

// The provisioner's side of each instance's watchdog (watchdog.ts): one SSH connection per ready
// instance, over which the lease is renewed every `renewEveryMs` (one exec, which also starts the
// watchdog when it is not running, after a supervisor restart say, and reads back a spot
// interruption notice). Renewals run beside the provisioner's loop, never in it: a slow instance
// holds up no other. Notices are kept until the provisioner's next step takes them, so that every
// change to an instance record is made by that loop alone.

/** How often a lease is renewed: a quarter of IdleTimeout, from 1 s to 5 s. */
export function renewEveryMs(idleTimeoutMs: number): number {
  return Math.min(5000, Math.max(1000, Math.round(idleTimeoutMs / 4)));
}

/**
 * How long an instance goes without a job and without a renewal before its watchdog shuts it
 * down: IdleTimeout (what the provisioner itself allows an idle instance) plus three missed
 * renewals and 5 s, so that a supervisor that is merely slow never loses an instance this way.
 */
export function watchdogIdleLimitMs(idleTimeoutMs: number): number {
  return idleTimeoutMs + 3 * renewEveryMs(idleTimeoutMs) + 5000;
}

export class InstanceTending {
  private readonly connections = new Map<string, SshConnection>();
  private readonly busy = new Set<string>();
  private readonly tendedAt = new Map<string, number>();
  private readonly notices = new Map<string, string>();
  private readonly renewMs: number;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.renewMs = renewEveryMs(config.ec2.idleTimeoutMs);
  }

  /** Renews the leases that are due, in the background. */
  tend(records: InstanceRecord[]): void {
    const now = Date.now();
    for (const record of records) {
      if (this.busy.has(record.token) || now - (this.tendedAt.get(record.token) ?? 0) < this.renewMs) continue;
      this.tendNow(record).catch((err) => this.log.debug(`EC2: could not renew the lease of ${record.instanceId} (${errorMessage(err)}); trying again`));
    }
  }

  /** One renewal now (the first one starts the watchdog). Throws when the instance does not answer. */
  async tendNow(record: InstanceRecord): Promise<void> {
    this.busy.add(record.token);
    try {
      const result = await this.connection(record).exec(tendScript(this.settings(record), String(Date.now())));
      if (result.code !== 0) throw new Error(`the lease renewal exited with code ${result.code}: ${result.stderr.trim().slice(0, 200)}`);
      this.tendedAt.set(record.token, Date.now());
      if (/^STARTED$/m.test(result.stdout)) this.log.info(`EC2: watchdog started on ${record.instanceId}: it shuts itself down after ${formatDuration(watchdogIdleLimitMs(this.config.ec2.idleTimeoutMs))} with no job and no lease renewal`);
      const notice = /^NOTICE (.*)$/m.exec(result.stdout);
      if (notice && !this.notices.has(record.token)) this.notices.set(record.token, notice[1].trim().slice(0, 300));
    } finally {
      this.busy.delete(record.token);
    }
  }

  /** Spot interruption notices read since the last call: token → the notice as IMDS gave it. */
  takeNotices(): Map<string, string> {
    const taken = new Map(this.notices);
    this.notices.clear();
    return taken;
  }

  /** Kills the instance's runs (best effort: an instance that does not answer is going anyway). */
  async killRuns(record: InstanceRecord): Promise<void> {
    if (!record.instanceId || !record.address) return;
    try {
      await this.connection(record).exec(killRunsScript(this.config.deployment, record.instanceId));
    } catch (err) {
      this.log.warn(`EC2: could not stop the runs on ${record.instanceId} (${errorMessage(err)})`);
    }
  }

  /** Forgets an instance (lost, terminating, gone): its connection is closed. */
  drop(token: string): void {
    this.connections.get(token)?.close();
    this.connections.delete(token);
    this.tendedAt.delete(token);
  }

  close(): void {
    for (const token of [...this.connections.keys()]) this.drop(token);
  }

  private settings(record: InstanceRecord): WatchdogSettings {
    const ec2 = this.config.ec2;
    return {
      deployment: this.config.deployment,
      instanceId: record.instanceId!,
      idleLimitMs: watchdogIdleLimitMs(ec2.idleTimeoutMs),
      spot: record.spot ?? false,
      metadataEndpoint: ec2.metadataEndpoint.replaceAll('{address}', record.address!),
      shutdownCommand: ec2.shutdownCommand,
    };
  }

  private connection(record: InstanceRecord): SshConnection {
    let ssh = this.connections.get(record.token);
    if (!ssh) {
      ssh = new SshConnection(
        { name: instanceHostName(record.instanceId!), hostname: record.address!, port: this.config.ec2.port, username: this.config.ec2.username, key: this.config.ec2.key },
        { knownHosts: ec2KnownHosts(this.config), hostKeyPolicy: this.config.hostKeyPolicy, log: this.log, connectTimeoutMs: 5000 },
      );
      this.connections.set(record.token, ssh);
    }
    return ssh;
  }
}

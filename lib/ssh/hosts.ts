import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import { join } from 'node:path';
import type { SshTarget } from './connection.js';
import { instanceHostName } from '../backends/ec2/instances.js';
import type { HostState, InstanceRecord } from '../store/registry-records.js';

export type { HostState } from '../store/registry-records.js';

// The SSH hosts a deployment knows: those in the config's Hosts, those that job files name with
// their own connection keys (the old tool's way: Hostname, Username, Key in the job), which the
// manager registers in Redis when it accepts such a job, and the EC2 instances this deployment
// launched once they answer over SSH. Every actor reads the same registry, along with each host's
// state (a host unreachable for HostDownAfter is down: no new jobs).

export interface Host extends SshTarget {
  slots: number;
  /** Named only by job files (not in the config): takes only jobs that name it. */
  adhoc: boolean;
  /** Job queues its slots serve (default: host:<name>, and `any` for configured hosts). */
  queues?: string[];
  /** Its own known_hosts file (EC2 instances: keys read from their console). */
  knownHosts?: string;
}

const REFRESH_MS = 2000;

/**
 * An EC2 instance as a host: its slots (EC2.Slots, or its type's vCPUs) while ready, none while
 * it is being retired or is lost (its jobs are placed again elsewhere).
 */
function instanceHost(record: InstanceRecord, config: Config): Host | null {
  if (!record.instanceId || !record.address || !['ready', 'retiring'].includes(record.state)) return null;
  return {
    name: instanceHostName(record.instanceId),
    hostname: record.address,
    port: config.ec2.port,
    username: config.ec2.username,
    key: config.ec2.key,
    slots: record.state === 'ready' ? record.slots ?? 1 : 0,
    adhoc: false,
    queues: [record.location],
    knownHosts: ec2KnownHosts(config),
  };
}

/**
 * Several nodes (lib/nodes/) reach the instances that one of them readied: the keys in their
 * records that this node's EC2 known_hosts file lacks are added to it (a changed key replaces the
 * address's old one: the record is the provisioner's word, read from the instance's console).
 */
function learnInstanceKeys(config: Config, records: InstanceRecord[]): void {
  const lines = records.flatMap((r) => (['ready', 'retiring'].includes(r.state) ? r.hostKeys ?? [] : []));
  if (lines.length === 0) return;
  const file = ec2KnownHosts(config);
  const known = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  const missing = lines.filter((line) => !known.includes(line));
  if (missing.length === 0) return;
  const names = new Set(missing.map((line) => line.split(' ')[0]));
  const kept = known.filter((line) => !names.has(line.split(' ')[0]));
  writeFileSync(file, [...kept, ...lines.filter((line) => names.has(line.split(' ')[0]))].join('\n') + '\n', { mode: 0o600 });
}

export function ec2KnownHosts(config: Config): string {
  return join(config.stateDir, 'ec2_known_hosts');
}

export function configuredHosts(config: Config): Host[] {
  return config.hosts.map((h) => ({ name: h.name, hostname: h.hostname, port: h.port, username: h.username, key: h.key, identityFiles: h.identityFiles, jump: h.jump, slots: h.slots, adhoc: false }));
}

export class HostRegistry {
  private adhoc = new Map<string, Host>();
  private instances: Host[] = [];
  private states = new Map<string, HostState>();
  private refreshedAt = 0;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
  ) {}

  /** Re-reads ad-hoc hosts and host states from Redis, at most every 2 s unless forced. */
  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.refreshedAt < REFRESH_MS) return;
    const [adhoc, states, instances] = await Promise.all([this.store.adhocHosts(), this.store.hostStates(), this.store.instances()]);
    this.adhoc = new Map([...adhoc].map(([name, record]) => [name, { ...record, name, adhoc: true }]));
    this.instances = instances.map((record) => instanceHost(record, this.config)).filter((h): h is Host => h !== null);
    learnInstanceKeys(this.config, instances);
    this.states = states;
    this.refreshedAt = Date.now();
  }

  all(): Host[] {
    return [...configuredHosts(this.config), ...this.adhoc.values(), ...this.instances];
  }

  get(name: string): Host | undefined {
    return this.all().find((h) => h.name === name);
  }

  state(name: string): HostState | null {
    return this.states.get(name) ?? null;
  }

  isDown(name: string): boolean {
    return this.states.get(name)?.state === 'down';
  }

  /** Every host marked down, known or not (an EC2 instance that ended may still hold a slot). */
  down(): [string, HostState][] {
    return [...this.states].filter(([, state]) => state.state === 'down');
  }

  async register(host: Host): Promise<void> {
    if (this.adhoc.has(host.name)) return;
    const { name, hostname, port, username, key, identityFiles, jump, slots } = host;
    await this.store.registerHost(name, { hostname, port, username, key, identityFiles, jump, slots });
    this.adhoc.set(name, host);
  }

  async setState(name: string, state: 'up' | 'down', reason: string | null = null): Promise<void> {
    if (this.states.get(name)?.state === state) return;
    const value: HostState = { state, since: Date.now(), reason };
    await this.store.setHostState(name, value);
    this.states.set(name, value);
  }
}

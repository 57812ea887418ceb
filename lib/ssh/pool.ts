import type { Config } from '../config/config.js';
import type { Logger } from '../util/log.js';
import { SshConnection } from './connection.js';
import { SshUnavailableError } from './errors.js';
import type { HostRegistry } from './hosts.js';

// One SSH connection per host per actor, made on first use and kept.

export class SshPool {
  private readonly connections = new Map<string, SshConnection>();

  constructor(
    private readonly hosts: HostRegistry,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  connection(name: string): SshConnection {
    let connection = this.connections.get(name);
    if (!connection) {
      const host = this.hosts.get(name);
      if (!host) throw new SshUnavailableError(`no host named ${name} is known (from the config's Hosts, a job file, or a running EC2 instance); add it to Hosts, or see \`jobmanager hosts\` for the known ones`);
      // A handshake slower than half of HostDownAfter counts as no answer.
      const connectTimeoutMs = Math.min(10_000, Math.max(1000, this.config.hostDownAfterMs / 2));
      connection = new SshConnection(host, { knownHosts: host.knownHosts ?? this.config.knownHosts, hostKeyPolicy: this.config.hostKeyPolicy, log: this.log, connectTimeoutMs });
      this.connections.set(name, connection);
    }
    return connection;
  }

  closeAll(): void {
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }
}

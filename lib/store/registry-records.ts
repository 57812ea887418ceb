// The records kept beside the jobs, one JSON value per field of a hash (see keys.ts): the hosts
// that job files name, each host's state, the EC2 instances this deployment launched, and the
// running supervisor. Store reads and writes them (lib/store/store.ts); what they mean is told by
// their users (lib/ssh/hosts.ts, lib/backends/ec2/instances.ts, actors/supervisor.ts).

import type { SshRoute } from '../ssh/handshake.js';

/** A host named only by job files (Hosts hash, field = host name): how to reach it (resolved through ~/.ssh/config). */
export interface AdhocHostRecord extends SshRoute {
  slots: number;
}

/** HostState hash, field = host name. Down: granted nothing (grantFrom.lua reads `state`). */
export interface HostState {
  state: 'up' | 'down';
  since: number;
  reason: string | null;
}

/**
 * Unreachable hash, field = host name: since when the fetcher has not reached the host, and when
 * it last tried, so that a fetcher started meanwhile (a supervisor restarted, an actor crashed)
 * counts on towards HostDownAfter instead of from zero (lib/backends/remote/fleet.ts).
 */
export interface UnreachableRecord {
  since: number;
  checkedAt: number;
  reason: string;
}

//   requested ─RunInstances─> pending ─running, has an address─> booting ─SSH answers─> ready
//   ready ─idle for IdleTimeout─> retiring ─still idle─> terminating ─terminated─> (record gone)
//   any ─EC2 says shutting-down, terminated, stopping or stopped, or a spot notice─> lost
//   lost ─jobs placed again (and a stopped instance terminated)─> terminating
export type InstanceState = 'requested' | 'pending' | 'booting' | 'ready' | 'retiring' | 'terminating' | 'lost';

/** Instances hash, field = launch token (the ClientToken of RunInstances). */
export interface InstanceRecord {
  token: string;
  instanceId: string | null;
  state: InstanceState;
  /** The EC2 location its jobs come from: ec2:<image>:<type>. */
  location: string;
  imageId: string;
  /** The type launched: the location's, or a later one of EC2.InstanceTypes after capacity errors. */
  instanceType: string;
  /** The subnet asked for (null: EC2's default). */
  subnetId: string | null;
  /** Jobs it runs at once (EC2.Slots, or its type's vCPUs). */
  slots: number;
  /** A one-time spot instance. */
  spot: boolean;
  requestedAt: number;
  /** When RunInstances answered (or the instance was found after a crash): ReadyTimeout counts from here. */
  launchedAt?: number | null;
  address: string | null;
  readyAt: number | null;
  idleSince: number | null;
  changedAt: number;
  lastError: string | null;
  /** Its SSH host keys as known_hosts lines, read from its console by the node that readied it. */
  hostKeys?: string[];
  /** Why it is lost (EC2's state and reason, or the spot notice). */
  lostReason?: string | null;
}

export interface ActorStatus {
  state: string;
  restarts: number;
}

/** The Supervisor hash: written by the supervisor's heartbeat, read by `status`. */
export interface SupervisorRecord {
  pid: number;
  host: string;
  startedAt: number;
  heartbeatAt: number;
  status: string;
  stateDir: string;
  actors: Record<string, ActorStatus>;
  /** The web page's address (lib/web), '' when it is off. */
  web: string;
}

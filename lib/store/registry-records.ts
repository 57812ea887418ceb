// The records kept beside the jobs, one JSON value per field of a hash (see keys.ts): the hosts
// that job files name, each host's state, the EC2 instances this deployment launched, and the
// running supervisor. Store reads and writes them (lib/store/store.ts); what they mean is told by
// their users (lib/ssh/hosts.ts, lib/backends/ec2/instances.ts, actors/supervisor.ts).

/** A host named only by job files (Hosts hash, field = host name): how to reach it. */
export interface AdhocHostRecord {
  hostname: string;
  port: number;
  username: string;
  key: string | null;
  slots: number;
}

/** HostState hash, field = host name. Down: granted nothing (grantFrom.lua reads `state`). */
export interface HostState {
  state: 'up' | 'down';
  since: number;
  reason: string | null;
}

//   requested ─RunInstances─> pending ─running, has an address─> booting ─SSH answers─> ready
//   ready ─idle for IdleTimeout─> retiring ─still idle─> terminating ─terminated─> (record gone)
export type InstanceState = 'requested' | 'pending' | 'booting' | 'ready' | 'retiring' | 'terminating';

/** Instances hash, field = launch token (the ClientToken of RunInstances). */
export interface InstanceRecord {
  token: string;
  instanceId: string | null;
  state: InstanceState;
  /** The EC2 location its jobs come from: ec2:<image>:<type>. */
  location: string;
  imageId: string;
  instanceType: string;
  requestedAt: number;
  address: string | null;
  readyAt: number | null;
  idleSince: number | null;
  changedAt: number;
  lastError: string | null;
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

import { JobManagerError } from '../util/errors.js';

// A node's lease: its record in the Nodes hash, which its supervisor's heartbeat renews every
// HEARTBEAT (2s). While the lease is fresh (renewed less than NODE_LEASE_MS ago) the node name
// is taken: a second supervisor that claims it from another machine or state directory is
// refused (claimNode-1.lua). A lease older than NodeDownAfter makes the node down: what was
// granted to it and not started goes to other nodes (reclaimNode-5.lua).
//
// The EC2 lease (Ec2Lease, ec2Lease-1.lua) is held the same way by one node at a time, which
// provisions EC2 and ends idle instances; it lapses after NODE_LEASE_MS without renewal, and
// another node takes it.

/** How long a node's lease (and the EC2 lease) lasts without a renewal. */
export const NODE_LEASE_MS = 10_000;
/** How often the supervisor renews its node's lease (its heartbeat) and the manager the EC2 lease. */
export const LEASE_RENEW_MS = 2000;

/** A node's lease, as the Nodes hash holds it (field = node name). */
export interface NodeLease {
  host: string;
  pid: number;
  stateDir: string;
  /** When this supervisor claimed the name. */
  since: number;
  renewedAt: number;
  localMaxJobs: number;
  status: 'running' | 'stopped';
}

export type NodeLiveness = 'up' | 'stopped' | 'lapsed' | 'down';

/** How a node stands at `now`: up (lease fresh), stopped (said so), lapsed (not renewed), down (past NodeDownAfter). */
export function livenessOf(lease: NodeLease, now: number, downAfterMs: number): NodeLiveness {
  const age = now - lease.renewedAt;
  if (lease.status === 'stopped') return age >= downAfterMs ? 'down' : 'stopped';
  if (age < NODE_LEASE_MS) return 'up';
  return age >= downAfterMs ? 'down' : 'lapsed';
}

/** A supervisor started with a node name that a live supervisor elsewhere holds. */
export class NodeTakenError extends JobManagerError {
  override readonly code = 'JM_NODE_TAKEN';
  constructor(
    readonly node: string,
    readonly holder: NodeLease,
  ) {
    super(`node ${node} is held by the supervisor of ${holder.host} (pid ${holder.pid}, state directory ${holder.stateDir}) since ${new Date(holder.since).toISOString()}: give this supervisor another NodeName in its config (each supervisor on one Redis is a node of its own), or stop that one first`);
  }
}

/** `nodes forget` of a node whose lease is fresh, or of a node nobody knows. */
export class NodeForgetError extends JobManagerError {
  override readonly code = 'JM_NODE_FORGET';
}

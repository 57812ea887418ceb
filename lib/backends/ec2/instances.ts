import type { Store } from '../../store/store.js';

// The instances this deployment launched, one record per launch request, kept in the Redis hash
// Instances (token → JSON). The record is written before RunInstances is called, with the
// ClientToken it will use: a launch interrupted by a crash is asked for again with the same token,
// and EC2 answers with the instance it already made instead of making a second one.
//
//   requested ─RunInstances─> pending ─running, has an address─> booting ─SSH answers─> ready
//   ready ─idle for IdleTimeout─> retiring ─still idle─> terminating ─terminated─> (record gone)

export type InstanceState = 'requested' | 'pending' | 'booting' | 'ready' | 'retiring' | 'terminating';

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

export function instanceHostName(instanceId: string): string {
  return `ec2-${instanceId}`;
}

export class InstanceBook {
  constructor(private readonly store: Store) {}

  async all(): Promise<InstanceRecord[]> {
    const hash = await this.store.redis.hgetall(this.store.keys.instances);
    return Object.values(hash).map((json) => JSON.parse(json) as InstanceRecord);
  }

  async save(record: InstanceRecord): Promise<void> {
    await this.store.redis.hset(this.store.keys.instances, record.token, JSON.stringify(record));
  }

  async remove(token: string): Promise<void> {
    await this.store.redis.hdel(this.store.keys.instances, token);
  }
}

import type { Store } from '../store/store.js';
import { nodeLocation } from '../store/keys.js';
import { livenessOf, type NodeLiveness } from './lease.js';

// Every node of the deployment as `jobmanager nodes`, `status` and the web page show it: its
// lease, its local slots used of its LocalMaxJobs, the jobs waiting for it alone (Node: in their
// job file), and whether it holds the EC2 lease.

export interface NodeRow {
  name: string;
  host: string;
  pid: number;
  stateDir: string;
  /** up | stopped | lapsed (not renewed for a lease) | down (not renewed for NodeDownAfter). */
  lease: NodeLiveness;
  /** When its supervisor claimed the node. */
  since: number;
  renewedAt: number;
  slots: { used: number; total: number };
  /** Jobs that asked for this node and wait for a slot (Job_Queue:local:<node>). */
  waiting: number;
  /** It provisions EC2 and ends idle instances (holds the EC2 lease). */
  ec2: boolean;
}

export async function nodeRows(store: Store, downAfterMs: number, now = Date.now()): Promise<NodeRow[]> {
  const [nodes, ec2Holder] = await Promise.all([store.nodes(), store.ec2LeaseHolder()]);
  const names = [...nodes.keys()].sort();
  const depths = await store.queueDepths(names.map(nodeLocation));
  return names.map((name, i) => {
    const lease = nodes.get(name)!;
    return {
      name, host: lease.host, pid: lease.pid, stateDir: lease.stateDir,
      lease: livenessOf(lease, now, downAfterMs), since: lease.since, renewedAt: lease.renewedAt,
      slots: { used: depths.locations[i].used, total: lease.localMaxJobs },
      waiting: depths.locations[i].waiting,
      ec2: ec2Holder === name,
    };
  });
}

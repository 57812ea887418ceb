import { readConfig, openStore } from '../context.js';
import { age, table } from '../output.js';
import { nodeRows, type NodeRow } from '../../nodes/node-rows.js';
import { NODE_LEASE_MS, NodeForgetError } from '../../nodes/lease.js';
import { EXIT, type CommandArgs } from './types.js';

// `jobmanager nodes`: every supervisor (node) on this Redis, its lease, its local slots.
// `jobmanager nodes forget NODE`: a node that will not come back (its machine is gone) is
// forgotten; its local runs are lost (recorded interrupted, retried per their Retries), what was
// granted to it and not started goes to other nodes (lua/forgetNode-11.lua).

export async function nodesCommand(args: CommandArgs): Promise<number> {
  const [action, node, ...extra] = args.positionals;
  if (action !== undefined && (action !== 'forget' || node === undefined || extra.length > 0)) {
    args.out.error('usage: jobmanager nodes [forget NODE]');
    return EXIT.usage;
  }
  const config = readConfig(args.config);
  const handle = await openStore(config);
  try {
    if (action === 'forget') return await forget(args, handle.store, node, config.retryBackoffMs);
    const rows = await nodeRows(handle.store, config.nodeDownAfterMs);
    if (args.out.json) args.out.data({ nodes: rows });
    else if (rows.length === 0) args.out.line('no nodes yet: each supervisor (`jobmanager start`) is one');
    else args.out.line(nodesTable(rows));
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

export function nodesTable(rows: NodeRow[]): string {
  return table(
    ['NODE', 'HOST', 'PID', 'LEASE', 'SINCE', 'SLOTS', 'WAITING', 'EC2'],
    rows.map((r) => [r.name, r.host, r.pid, r.lease === 'up' ? 'up' : `${r.lease}, renewed ${age(r.renewedAt)} ago`, age(r.since), `${r.slots.used}/${r.slots.total}`, r.waiting, r.ec2 ? 'provisions' : '']),
  );
}

async function forget(args: CommandArgs, store: import('../../store/store.js').Store, node: string, backoffMs: number): Promise<number> {
  const result = await store.forgetNode(node, NODE_LEASE_MS, backoffMs);
  if (result === null) {
    const error = new NodeForgetError(`no node ${node} is known here (\`jobmanager nodes\` lists them)`);
    if (args.out.json) args.out.data({ error });
    else args.out.error(error.message);
    return EXIT.usage;
  }
  if (!Array.isArray(result)) {
    const error = new NodeForgetError(`node ${node} is running (the supervisor of ${result.host}, pid ${result.pid}, renewed its lease ${age(result.renewedAt)} ago): stop it first, or let its lease lapse (${NODE_LEASE_MS / 1000}s)`);
    if (args.out.json) args.out.data({ error });
    else args.out.error(error.message);
    return EXIT.unavailable;
  }
  const [given, requeued, failed, adopted] = result;
  if (args.out.json) {
    args.out.data({ forgotten: node, givenBack: given, lostRuns: { queuedAgain: requeued, failed }, remoteRunsAdopted: adopted });
  } else {
    args.out.line(`forgot node ${node}: ${requeued + failed} local run(s) lost (${requeued} queued again, ${failed} failed: no retries left), ${given} granted job(s) given to other nodes${adopted ? `, ${adopted} remote run(s) now watched by node ${store.node}` : ''}`);
  }
  return EXIT.ok;
}

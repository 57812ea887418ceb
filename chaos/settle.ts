import { isFinal } from '../lib/store/job-record.js';
import { sleep } from '../lib/util/stop-signal.js';
import type { Store } from '../lib/store/store.js';
import type { World } from './world.js';

// After the faults stop: wait, with a deadline, for every job to reach a final state and for
// every EC2 instance to be terminated (IdleTimeout after its last job), printing progress. A
// deadline that runs out is not an error here: the checks then say what did not settle.

const PROGRESS_EVERY_MS = 5000;

export interface Snapshot {
  jobs: number;
  final: number;
  byState: Map<string, number>;
  instancesAlive: number;
}

export async function snapshot(world: World, store: Store): Promise<Snapshot> {
  const ids = await store.jobIds(0, 1_000_000);
  const states = (await store.getFields(ids, ['state'])).map(([state]) => state ?? '?');
  const byState = new Map<string, number>();
  for (const state of states) byState.set(state, (byState.get(state) ?? 0) + 1);
  return {
    jobs: ids.length,
    final: states.filter((s) => isFinal(s)).length,
    byState,
    instancesAlive: world.ec2.instances().filter((i) => i.state !== 'terminated').length,
  };
}

export async function settle(world: World, store: Store, deadline: number, log: (text: string) => void, signal?: AbortSignal): Promise<boolean> {
  let lastProgress = 0;
  for (;;) {
    const now = Date.now();
    let s: Snapshot | null = null;
    try {
      s = await snapshot(world, store);
    } catch (err) {
      log(`settling: cannot read Redis (${(err as Error).message})`);
    }
    const done = s !== null && s.final === s.jobs && s.instancesAlive === 0;
    if (s && (done || now - lastProgress >= PROGRESS_EVERY_MS || now >= deadline)) {
      lastProgress = now;
      const open = [...s.byState].filter(([state]) => !isFinal(state)).map(([state, n]) => `${state} ${n}`).join(', ');
      log(`settling: ${s.final}/${s.jobs} jobs final${open ? ` (${open})` : ''}; EC2 instances alive: ${s.instancesAlive}; ${Math.max(0, Math.round((deadline - now) / 1000))}s left`);
    }
    if (done) return true;
    if (now >= deadline || signal?.aborted) return false;
    await sleep(500, signal); // cut short when the run is stopped
  }
}

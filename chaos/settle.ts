import { isFinal } from '../lib/store/job-record.js';
import { formatDuration } from '../lib/util/duration.js';
import { sleep } from '../lib/util/stop-signal.js';
import type { Store } from '../lib/store/store.js';
import type { World } from './world.js';

// After the faults stop: wait, with a deadline, for every job to reach a final state and for
// every EC2 instance to be terminated (IdleTimeout after its last job), printing progress and,
// each time, every job not final yet (id, name, kind, state, where, since when): a job that
// stays is named while the run is still there to look at. A deadline that runs out is not an
// error here: the checks then say what did not settle.

const PROGRESS_EVERY_MS = 5000;
/** Jobs named one by one in a progress line at most; the rest are counted. */
const NAMED_AT_MOST = 12;

export interface OpenJob {
  id: string;
  name: string;
  classType: string;
  state: string;
  /** Where it holds a slot (host:<name>, local), or where it waits to go. */
  where: string;
  /** Since when it has been in this state (ms). */
  since: number | null;
}

export interface Snapshot {
  jobs: number;
  final: number;
  byState: Map<string, number>;
  instancesAlive: number;
  open: OpenJob[];
}

const OPEN_FIELDS = ['state', 'name', 'classType', 'host', 'location', 'queuedAt', 'retryAt', 'grantedAt', 'startedAt'];

export async function snapshot(world: World, store: Store): Promise<Snapshot> {
  const ids = await store.jobIds(0, 1_000_000);
  const states = (await store.getFields(ids, ['state'])).map(([state]) => state ?? '?');
  const byState = new Map<string, number>();
  for (const state of states) byState.set(state, (byState.get(state) ?? 0) + 1);
  const openIds = ids.filter((_, i) => !isFinal(states[i]));
  const rows = await store.getFields(openIds, OPEN_FIELDS);
  const open = openIds.map((id, i): OpenJob => {
    const [state, name, classType, host, location, queuedAt, retryAt, grantedAt, startedAt] = rows[i];
    const since = state === 'running' ? startedAt : state === 'granted' ? grantedAt : retryAt ?? queuedAt;
    return { id, name: name ?? '?', classType: classType ?? '?', state: state ?? '?', where: (state === 'granted' || state === 'running' ? host : location) ?? '-', since: since ? Number(since) : null };
  }).sort((a, b) => (a.since ?? 0) - (b.since ?? 0));
  return {
    jobs: ids.length,
    final: states.filter((s) => isFinal(s)).length,
    byState,
    instancesAlive: world.ec2.instances().filter((i) => i.state !== 'terminated').length,
    open,
  };
}

/** One line per job not final yet, longest waiting first: `job 17 remote-any.ok.17 (Remote) granted on host:host33 for 34s`. */
export function describeOpen(open: OpenJob[], now = Date.now()): string[] {
  const lines = open.slice(0, NAMED_AT_MOST).map((job) => {
    const since = job.since === null ? '' : ` since ${new Date(job.since).toTimeString().slice(0, 8)} (${formatDuration(now - job.since)})`;
    return `job ${job.id} ${job.name} (${job.classType}) ${job.state} ${job.state === 'granted' || job.state === 'running' ? 'on' : 'for'} ${job.where}${since}`;
  });
  if (open.length > NAMED_AT_MOST) lines.push(`... and ${open.length - NAMED_AT_MOST} more`);
  return lines;
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
      for (const line of describeOpen(s.open, now)) log(`settling:   ${line}`);
    }
    if (done) return true;
    if (now >= deadline || signal?.aborted) return false;
    await sleep(500, signal); // cut short when the run is stopped
  }
}

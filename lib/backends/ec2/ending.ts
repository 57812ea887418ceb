import type { Config } from '../../config/config.js';
import type { Store } from '../../store/store.js';
import { errorMessage } from '../../util/errors.js';
import { errorCode, loadEc2 } from './client.js';
import { instanceHostName, type InstanceRecord } from './instances.js';
import { watchdogIdleLimitMs } from './tending.js';
import { formatDuration } from '../../util/duration.js';

// Ending instances from the command line, once no supervisor runs (so no provisioner launches or
// readies one meanwhile): `run` ends those it launched before it exits, `stop` those that are
// idle. An instance with a job in a slot is left (the job runs on, detached) with the reason;
// its watchdog ends it once its last job has ended and no supervisor renews its lease. Each
// record ended becomes `terminating`: the next supervisor sees it terminated and forgets it.

export interface InstancesEnded {
  terminated: string[];
  /** Busy instances left running, and why. */
  left: { instanceId: string; why: string }[];
  /** TerminateInstances failed (the instances are still there, and said so). */
  error: string | null;
}

export async function endIdleInstances(config: Config, store: Store, only: (record: InstanceRecord) => boolean = () => true): Promise<InstancesEnded> {
  const records = (await store.instances()).filter((r) => r.instanceId && r.state !== 'terminating' && only(r));
  const ended: InstancesEnded = { terminated: [], left: [], error: null };
  if (records.length === 0) return ended;
  const ending: InstanceRecord[] = [];
  for (const record of records) {
    const jobs = await store.slotHolders(`host:${instanceHostName(record.instanceId!)}`);
    if (jobs.length && record.state !== 'lost') {
      ended.left.push({ instanceId: record.instanceId!, why: `busy with job${jobs.length > 1 ? 's' : ''} ${jobs.join(' ')}; it ends itself ${formatDuration(watchdogIdleLimitMs(config.ec2.idleTimeoutMs))} after its last job if no supervisor runs` });
    } else {
      ending.push(record);
    }
  }
  if (ending.length === 0) return ended;
  const { sdk, client } = await loadEc2(config.ec2);
  try {
    await client.send(new sdk.TerminateInstancesCommand({ InstanceIds: ending.map((r) => r.instanceId!) }));
  } catch (err) {
    // Some may be gone already: one at a time then, each for itself.
    if (errorCode(err) !== 'InvalidInstanceID.NotFound') {
      ended.error = errorMessage(err);
      return ended;
    }
    for (const record of [...ending]) {
      try {
        await client.send(new sdk.TerminateInstancesCommand({ InstanceIds: [record.instanceId!] }));
      } catch (one) {
        if (errorCode(one) !== 'InvalidInstanceID.NotFound') ended.error = errorMessage(one);
      }
    }
  } finally {
    client.destroy();
  }
  for (const record of ending) {
    await store.saveInstance({ ...record, state: 'terminating', changedAt: Date.now() });
    ended.terminated.push(record.instanceId!);
  }
  return ended;
}

/** The lines a command prints about what it ended and left. */
export function describeEnded(ended: InstancesEnded): string[] {
  const lines: string[] = [];
  if (ended.terminated.length) lines.push(`terminated ${ended.terminated.length} EC2 instance${ended.terminated.length > 1 ? 's' : ''}: ${ended.terminated.join(' ')}`);
  for (const { instanceId, why } of ended.left) lines.push(`left EC2 instance ${instanceId} running: ${why}`);
  if (ended.error) lines.push(`could not terminate EC2 instances (${ended.error}); \`jobmanager instances\` lists them, and \`jobmanager stop\` tries again`);
  return lines;
}

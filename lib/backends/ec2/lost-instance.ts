import type { Store } from '../../store/store.js';
import type { Logger } from '../../util/log.js';
import { loadJobInfo } from '../../runs/job-info.js';
import { RunRecorder } from '../../runs/recorder.js';

// The jobs of an instance that is gone, or about to go, placed again at once (issue 13: EC2's own
// word is authoritative for what no longer exists; nothing waits for HostDownAfter).
//
// In this order, each step safe to repeat after a crash (the record is already `lost`, so the
// next provisioner does it again):
//   1. the host is marked down in HostState: grantFrom.lua grants it nothing more, even before
//      every actor's host registry has seen the instance leave;
//   2. each run holding one of its slots ends as `interrupted` ("instance lost: …"): it runs
//      again at once without using a retry, as for any run JobManager itself cut short. A run
//      that already ended otherwise is left alone (finishRun ignores runs that are not current).
// Freed slots are handed to no one here (the host is gone): the manager grants the requeued jobs
// on its next round, which the caller wakes.

export async function placeJobsAgain(store: Store, log: Logger, hostName: string, reason: string, backoffMs: number): Promise<string[]> {
  await store.setHostState(hostName, { state: 'down', since: Date.now(), reason });
  const infos = await loadJobInfo(store, await store.slotHolders(`host:${hostName}`));
  const recorder = new RunRecorder(store, () => [], log, 'EC2', backoffMs);
  const placed: string[] = [];
  for (const info of infos.values()) {
    if (info.state !== 'granted' && info.state !== 'running') continue;
    recorder.end(info.id, info.run, { kind: 'interrupted', reason: `instance lost: ${reason}`, steps: [], startedAt: info.startedAt });
    placed.push(info.id);
  }
  await recorder.flush();
  return placed;
}

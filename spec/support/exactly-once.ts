import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import type { Store } from '../../lib/store/store.js';

/**
 * Every job of `ids` ended exactly once, through whatever a spec killed on the way: each record
 * says succeeded with one run; each id is in the ledger (lines `<id> <run>`, appended by the jobs
 * themselves) exactly once; and no slot, grant or running entry is left taken. `why` is shown
 * with a failure (the supervisor's log, say).
 */
export async function expectEachRanOnce(store: Store, ids: string[], ledger: string, why = ''): Promise<void> {
  const records = await store.getJobs(ids);
  expect(records.filter((r) => r?.state !== 'succeeded').map((r) => `${r?.id}:${r?.state}:${r?.reason}`), why).to.deep.equal([]);
  const lines = readFileSync(ledger, 'utf8').trim().split('\n');
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(line.split(' ')[0], (counts.get(line.split(' ')[0]) ?? 0) + 1);
  expect(ids.filter((id) => counts.get(id) !== 1), `jobs not in the ledger exactly once:\n${lines.join('\n')}`).to.deep.equal([]);
  expect(lines.length).to.equal(ids.length);
  for (const record of records) {
    const runs = await store.runsOf(record!.id);
    expect(runs.map((r) => r.outcome), `job ${record!.id}`).to.deep.equal(['succeeded']);
  }
  const k = store.keys;
  expect(await store.redis.scard(k.localJobs), 'slots still taken').to.equal(0);
  expect(await store.redis.llen(k.grantedQueue)).to.equal(0);
  expect(await store.redis.zcard(k.runningQueue)).to.equal(0);
}

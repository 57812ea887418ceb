import { expect } from 'chai';
import { join } from 'node:path';
import { Workspace } from './support/workspace.js';
import { seededRandom } from './support/random.js';
import { waitFor } from './support/wait-for.js';
import { expectEachRanOnce } from './support/exactly-once.js';

// The guarantee that sets JobManager apart: kill -9 the supervisor at any moment, start it again,
// and every job still ends exactly once. 200 local jobs each append their id to a ledger; the
// supervisor is killed at random moments (seeded: JM_SEED replays a run) while they run.

const JOBS = 200;
const KILLS = 5;

describe('kill -9 of the supervisor', function () {
  this.timeout(180_000);
  let ws: Workspace;
  const seed = Number(process.env.JM_SEED ?? Date.now() % 100_000);
  const random = seededRandom(seed);

  before(async function () {
    ws = await Workspace.create({ appendOnly: true, config: { LocalMaxJobs: 8, PollPeriod: '500ms', RetryBackoff: '50ms', LogLevel: 'info' } });
  });

  after(async function () {
    await ws.dispose();
  });

  it(`loses no job, runs none twice and leaks no slot (seed ${seed})`, async function () {
    const ledger = join(ws.dir, 'ledger');
    const files = Array.from({ length: JOBS }, (_, i) =>
      ws.write(`jobs/j${i}.yaml`, `Order: [{Run: 'echo "$JM_JOB_ID $JM_RUN" >> ${ledger}; sleep 0.0${Math.floor(random() * 10)}'}]`),
    );
    const queued = await ws.cli('queue', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = Workspace.ids(queued.stdout);
    const store = await ws.store();
    const finished = async () => (await store.getFields(ids, ['state'])).filter(([state]) => state === 'succeeded' || state === 'failed').length;

    for (let kill = 0; kill < KILLS; kill++) {
      const supervisor = await ws.startSupervisor();
      if (kill % 2 === 0) {
        // Let it get somewhere (a random number of jobs further), then kill it without warning.
        const before = await finished();
        const target = Math.min(JOBS - 1, before + 1 + Math.floor(random() * 25));
        await waitFor(`${target} jobs to finish`, async () => (await finished()) >= target || null, 60_000);
      } else {
        // Or at a random instant, whatever it is doing (this is the fault, not a wait for one).
        await new Promise((resolve) => setTimeout(resolve, random() * 300));
      }
      await supervisor.kill9();
    }
    await ws.startSupervisor();
    const result = await ws.cli('wait', ...ids, '--json', '--timeout', '90s');
    expect(result.code, result.stderr).to.equal(0);

    await expectEachRanOnce(store, ids, ledger);
  });
});

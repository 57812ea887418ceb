import { expect } from 'chai';
import { runChaos, SETTLE_MS, TEARDOWN_MS } from '../chaos/chaos.js';
import { formatReport, replayCommand } from '../chaos/report.js';
import { SshHost } from './support/sshd.js';

// The short chaos run (about a minute) in the test suite: the same run as `npm run chaos`, with
// Local, Thread, Remote and EC2 jobs while the supervisor, actors, redis-server and sshd are
// killed and a host is cut off at seeded random moments. JM_SEED=n replays a schedule; the
// long run is `npm run chaos -- --minutes 10`.

const MINUTES = 1;

(SshHost.available() ? describe : describe.skip)('chaos: a short run of faults of every kind', function () {
  this.timeout(MINUTES * 60_000 + SETTLE_MS + TEARDOWN_MS);
  const seed = Number(process.env.JM_SEED ?? Math.floor(Math.random() * 1_000_000));

  it(`loses no job, runs none twice, leaks no slot and no instance (seed ${seed})`, async function () {
    const lines: string[] = [];
    const t0 = Date.now();
    const report = await runChaos({ seed, minutes: MINUTES, log: (text) => lines.push(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${text}`) });
    const printout = formatReport(report);
    console.log(printout.replace(/^/gm, '      '));
    const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.problems.join('; ')}`);
    if (failed.length) console.log(lines.join('\n').replace(/^/gm, '      '));
    expect(failed, `chaos checks failed; replay with ${replayCommand(report)} (or JM_SEED=${seed})`).to.deep.equal([]);
  });
});

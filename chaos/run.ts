import { parseArgs } from 'node:util';
import { runChaos, SETTLE_MS, TEARDOWN_MS } from './chaos.js';
import { formatReport, replayCommand } from './report.js';

// `npm run chaos -- [--seed N] [--minutes M] [--nodes K]`: a mixed workload of Local, Thread, Remote and EC2
// jobs while processes are killed and hosts cut off at random (seeded) moments, then the checks
// that say nothing was lost, run twice or leaked. With --nodes K, K supervisors (nodes) share the
// run's Redis, and either may be killed. Exit 0 only when every check holds. The whole
// run is bounded by --minutes plus a fixed deadline for settling and tearing down.

function main(): void {
  const { values } = parseArgs({ options: { seed: { type: 'string' }, minutes: { type: 'string', default: '1' }, nodes: { type: 'string', default: '1' } } });
  const seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : Number(values.seed);
  const minutes = Number(values.minutes);
  const nodes = Number(values.nodes);
  if (!Number.isInteger(seed) || seed < 0 || !(minutes > 0) || !Number.isInteger(nodes) || nodes < 1 || nodes > 4) {
    console.error('usage: npm run chaos -- [--seed N] [--minutes M] [--nodes K]   (N a whole number, M above 0, K supervisors on one Redis: 1 to 4)');
    process.exit(2);
  }
  console.log(`chaos seed ${seed} (replay: ${replayCommand({ seed, minutes, nodes })})`);
  const t0 = Date.now();
  const log = (text: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${text}`);
  const bound = minutes * 60_000 + SETTLE_MS + TEARDOWN_MS;
  setTimeout(() => {
    console.log(`The chaos run overran its bound of ${Math.round(bound / 1000)}s: FAILED with seed ${seed}. Replay: ${replayCommand({ seed, minutes, nodes })}`);
    process.exit(1);
  }, bound).unref();
  // Ctrl-C: stop injecting, tear down everything the run started (sshd, redis-server, jobs).
  const interrupt = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.once(name, () => {
      console.log(`${name}: tearing down`);
      interrupt.abort();
    });
  }
  runChaos({ seed, minutes, nodes, log, signal: interrupt.signal }).then(
    (report) => {
      console.log(formatReport(report));
      process.exit(report.ok ? 0 : 1);
    },
    (err: unknown) => {
      console.log(`The chaos run could not run to its end: ${err instanceof Error ? err.stack : String(err)}`);
      console.log(`FAILED with seed ${seed}. Replay: ${replayCommand({ seed, minutes, nodes })}`);
      process.exit(1);
    },
  );
}

main();

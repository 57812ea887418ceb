// `npm run bench`: every row of issue 10's table, each with its reference run beside it in the
// same process (the machine's speed cancels out of the ratios; the load on it does not: run it on
// a quiet machine). `--only ROW,ROW` picks rows, `--quick` makes every size small, `--json`
// prints the figures as JSON; `--help` lists the sizes.
//
//   row       JobManager                                     reference
//   thread    no-op Thread jobs, queue --wait of N files     BullMQ addBulk + one Worker (concurrency 50)
//   latency   idle queue→start, Local and Thread, p50/p99    BullMQ add→processor p50/p99
//   queue     N files queued with one `queue`: time, RSS     —
//   sweep     a sweep of N jobs queued: time, RSS, Redis/job;  —
//             M Thread jobs of one sweep: first vs last tenth
//   memory    Redis memory per finished job                  —
//   local     N local `true` jobs on S slots                 xargs -P S; BullMQ's spawn processor
//   launcher  the local launcher's start-up                   node's own (`node -e 0`)
//   ssh       N `true` jobs on one SSH host (needs root)     raw ssh2; GNU Parallel (--parallel)
import { cpus, loadavg } from 'node:os';
import { BenchContext } from './context.js';
import { latencyRow } from './latency.js';
import { launcherRow } from './launcher.js';
import { localRow } from './local.js';
import { parseBenchOptions } from './options.js';
import { queueRow } from './queue-many.js';
import { memoryRow } from './redis-memory.js';
import { sshRow } from './remote.js';
import { sweepRow } from './sweep.js';
import { formatTable, type Row } from './report.js';
import { threadRow } from './thread.js';
import { stopAllSupervisors } from './timed-run.js';

const ROWS: Record<string, (ctx: BenchContext) => Promise<Row>> = {
  thread: threadRow,
  latency: latencyRow,
  queue: queueRow,
  sweep: sweepRow,
  memory: memoryRow,
  local: localRow,
  launcher: launcherRow,
  ssh: sshRow,
};

const options = parseBenchOptions(process.argv.slice(2), Object.keys(ROWS));
const ctx = new BenchContext(options);
const machine = { platform: process.platform, cores: cpus().length, node: process.version, loadBefore: loadavg()[0] };
const rows: Row[] = [];
// Interrupted (^C): the supervisors it started are stopped, its directories removed.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    ctx.say(`${signal}: stopping`);
    stopAllSupervisors();
    void ctx.close().finally(() => process.exit(130));
  });
}
try {
  for (const [id, run] of Object.entries(ROWS)) {
    if (options.only && !options.only.includes(id)) continue;
    rows.push(await run(ctx));
    if (!options.json) console.log(formatTable(rows.slice(-1)).split('\n').at(-1));
  }
} finally {
  await ctx.close();
}
const loadAfter = loadavg()[0];
if (options.json) {
  console.log(JSON.stringify({ machine: { ...machine, loadAfter }, options, rows }, null, 2));
} else {
  console.log(`\n${machine.cores} cores, node ${machine.node}, load average ${machine.loadBefore.toFixed(1)} before and ${loadAfter.toFixed(1)} after\n`);
  console.log(formatTable(rows));
}

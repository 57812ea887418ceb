import { parseArgs } from 'node:util';

// The bench's flags: which rows to run, and each row's size. Defaults are issue 10's sizes;
// --quick makes every size small, for a run that only checks that each row works.

export interface BenchOptions {
  only: string[] | null;
  json: boolean;
  /** Keep the temporary directories (state dirs, job files) for a look afterwards. */
  keep: boolean;
  threadJobs: number;
  threadSlots: number;
  latencySamples: number;
  queueFiles: number;
  memoryJobs: number;
  localJobs: number;
  slots: number;
  sshJobs: number;
  /** The SSH row's runs of each side (raw ssh2, JobManager), interleaved: it reports their medians. */
  sshRuns: number;
  /** The sweep row: jobs of one sweep queued, and jobs of one sweep run (Thread no-ops). */
  sweepJobs: number;
  sweepRunJobs: number;
  /** GNU Parallel rows beside the SSH one (slow: about 100 s with plain ssh). */
  parallel: boolean;
}

const USAGE = `npm run bench -- [--only ROW,ROW] [--json] [--quick] [sizes]

Rows: thread, latency, queue, sweep, memory, local, launcher, ssh (default: all; ssh needs root)
Sizes:  --thread-jobs 2000 --thread-slots 50 --latency-samples 50 --queue-files 20000
        --sweep-jobs 100000 --sweep-run-jobs 20000
        --memory-jobs 2000 --local-jobs 5000 --slots 8 --ssh-jobs 1000 --ssh-runs 5
Other:  --parallel (GNU Parallel beside the SSH row, where installed)  --keep (keep temp dirs)`;

const SIZES = {
  'thread-jobs': ['threadJobs', 2000, 200],
  'thread-slots': ['threadSlots', 50, 50],
  'latency-samples': ['latencySamples', 50, 10],
  'queue-files': ['queueFiles', 20_000, 2000],
  'memory-jobs': ['memoryJobs', 2000, 200],
  'local-jobs': ['localJobs', 5000, 500],
  slots: ['slots', 8, 8],
  'ssh-jobs': ['sshJobs', 1000, 100],
  'ssh-runs': ['sshRuns', 5, 3],
  'sweep-jobs': ['sweepJobs', 100_000, 5000],
  'sweep-run-jobs': ['sweepRunJobs', 20_000, 2000],
} as const;

export function parseBenchOptions(argv: string[], rowIds: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      parallel: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      ...Object.fromEntries(Object.keys(SIZES).map((flag) => [flag, { type: 'string' as const }])),
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = typeof values.only === 'string' ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : null;
  const unknown = only?.filter((id) => !rowIds.includes(id)) ?? [];
  if (unknown.length) throw new Error(`--only ${unknown.join(',')}: no such row; the rows are ${rowIds.join(', ')}`);
  const options: Record<string, unknown> = { only, json: values.json, keep: values.keep, parallel: values.parallel };
  for (const [flag, [key, full, quick]] of Object.entries(SIZES)) {
    const given = (values as Record<string, unknown>)[flag];
    const value = given === undefined ? (values.quick ? quick : full) : Number(given);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${flag} ${String(given)}: give a whole number above 0`);
    options[key] = value;
  }
  return options as unknown as BenchOptions;
}

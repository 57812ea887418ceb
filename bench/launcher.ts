import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Launcher, type LauncherKind } from '../lib/backends/local/launcher.js';
import { parseRunLogLine } from '../lib/runs/run-log.js';
import { silentLogger } from '../lib/util/log.js';
import { waitFor } from '../spec/support/wait-for.js';
import type { BenchContext } from './context.js';
import { LOCAL_TRUE, writeJobFiles } from './job-files.js';
import { timeLocalJobs } from './local.js';
import { figure, type Row } from './report.js';
import { median } from './stats.js';
import { timeXargs } from './xargs.js';

// The local launcher, Perl (launcher.pl) against node (launcher-main.ts), end to end: the local
// row's N `true` jobs on S slots, once with each, interleaved (Perl, node, Perl, node…) with
// xargs run between them, so that each run has a reference taken just before and just after it.
// The machine is shared: the figure is the median over the rounds of each run's time over its
// xargs reference. And each launcher's start: from spawning it to its P line, and to its first
// job's F line (the launcher's own clock, in ms).

const KINDS: LauncherKind[] = ['perl', 'node'];
const STARTS = 10;

async function startTimes(ctx: BenchContext, kind: LauncherKind): Promise<{ up: number; firstJob: number }> {
  const dir = ctx.runDir(`launcher-start-${kind}`);
  mkdirSync(dir);
  const saved = process.env.JM_LAUNCHER;
  process.env.JM_LAUNCHER = kind;
  const up: number[] = [];
  const firstJob: number[] = [];
  try {
    for (let i = 0; i < STARTS; i++) {
      const runLog = join(dir, `${i}.log`);
      const at = Date.now();
      const launcher = new Launcher(String(i), runLog, silentLogger, () => {});
      launcher.launch(`1.${i}`, join(dir, `job${i}`), 'true');
      launcher.close();
      const events = await waitFor(`launcher ${kind} to quit`, () => {
        const lines = existsSync(runLog) ? readFileSync(runLog, 'utf8').split('\n').flatMap((line) => parseRunLogLine(line) ?? []) : [];
        return lines.some((e) => e.kind === 'quit') && lines;
      });
      for (const e of events) {
        if (e.kind === 'launcher') up.push(e.at - at);
        if (e.kind === 'forked') firstJob.push(e.at! - at);
      }
    }
  } finally {
    if (saved === undefined) delete process.env.JM_LAUNCHER;
    else process.env.JM_LAUNCHER = saved;
  }
  return { up: median(up), firstJob: median(firstJob) };
}

export async function launcherRow(ctx: BenchContext): Promise<Row> {
  const { localJobs: n, slots, launcherRounds: rounds } = ctx.options;
  const measure = `local launcher, Perl against node: ${n.toLocaleString('en-US')} \`true\` jobs, ${slots} slots, end to end`;
  if (spawnSync('perl', ['-MPOSIX', '-e', '1'], { stdio: 'ignore' }).status !== 0) {
    return { id: 'launcher', measure, jobmanager: [], reference: [], comparison: [], skipped: 'perl is not installed' };
  }
  const jobs = writeJobFiles(join(ctx.dir, 'launcher-jobs'), n, LOCAL_TRUE);
  const runs: { kind: LauncherKind; endToEnd: number; pipeline: number; xargs: [number, number] }[] = [];
  let xargs = timeXargs(n, slots);
  for (let round = 1; round <= rounds; round++) {
    for (const kind of KINDS) {
      ctx.say(`launcher: round ${round}/${rounds}, ${kind}`);
      const jm = await timeLocalJobs(ctx, jobs, slots, { JM_LAUNCHER: kind });
      const next = timeXargs(n, slots);
      runs.push({ kind, endToEnd: jm.endToEnd, pipeline: jm.pipeline, xargs: [xargs, next] });
      ctx.say(`launcher: ${kind} ${jm.endToEnd.toFixed(2)} s end to end, xargs ${xargs.toFixed(2)} s before and ${next.toFixed(2)} s after: ${(jm.endToEnd / ((xargs + next) / 2)).toFixed(2)}×`);
      xargs = next;
    }
  }
  const ratios = (kind: LauncherKind) => runs.filter((r) => r.kind === kind).map((r) => r.endToEnd / ((r.xargs[0] + r.xargs[1]) / 2));
  const perl = median(ratios('perl'));
  const node = median(ratios('node'));
  const start = { perl: await startTimes(ctx, 'perl'), node: await startTimes(ctx, 'node') };
  const faster = node / perl - 1;
  return {
    id: 'launcher',
    measure,
    jobmanager: [figure('node launcher: started in', start.node.up, 'ms'), figure('first job', start.node.firstJob, 'ms')],
    reference: [figure('Perl launcher: started in', start.perl.up, 'ms'), figure('first job', start.perl.firstJob, 'ms')],
    comparison: [
      `end to end over xargs' time, median of ${rounds} interleaved run${rounds > 1 ? 's' : ''} each: node ${node.toFixed(2)}×, Perl ${perl.toFixed(2)}×`,
      faster > 0 ? `Perl ${(faster * 100).toFixed(1)}% faster` : `node ${(-faster * 100).toFixed(1)}% faster`,
    ],
    details: { jobs: n, slots, rounds, runs, medianRatio: { perl, node }, start },
  };
}

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Launcher } from '../lib/backends/local/launcher.js';
import { launcherEnvironment } from '../lib/backends/local/launcher-env.js';
import { jobEnvironment } from '../lib/backends/job-env.js';
import { parseRunLogLine } from '../lib/runs/run-log.js';
import { silentLogger } from '../lib/util/log.js';
import { waitFor } from '../spec/support/wait-for.js';
import type { BenchContext } from './context.js';
import { figure, ratio, type Row } from './report.js';
import { median } from './stats.js';

// The local launcher's start (a node process of its own, started once per starter incarnation):
// from `new Launcher()` to its P line, and to its first job's F line, by the launcher's own clock
// (ms). Against what node itself needs: `node -e 0`, started with the same environment, from
// spawn to exit.

const STARTS = 10;

async function launcherStart(dir: string, i: number): Promise<{ up: number; firstJob: number }> {
  const runLog = join(dir, `${i}.log`);
  const at = Date.now();
  const launcher = new Launcher(String(i), runLog, silentLogger, () => {});
  launcher.launch(`1.${i}`, join(dir, `job${i}`), 'true');
  launcher.close();
  const events = await waitFor('the launcher to quit', () => {
    const lines = existsSync(runLog) ? readFileSync(runLog, 'utf8').split('\n').flatMap((line) => parseRunLogLine(line) ?? []) : [];
    return lines.some((e) => e.kind === 'quit') && lines;
  });
  const up = events.find((e) => e.kind === 'launcher')!.at - at;
  const forked = events.find((e) => e.kind === 'forked');
  return { up, firstJob: (forked?.kind === 'forked' ? forked.at ?? Number.NaN : Number.NaN) - at };
}

function bareNode(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    spawn(process.execPath, ['-e', '0'], { stdio: 'ignore', env: launcherEnvironment(jobEnvironment()) })
      .on('error', reject)
      .on('exit', () => resolve(Number(process.hrtime.bigint() - start) / 1e6));
  });
}

export async function launcherRow(ctx: BenchContext): Promise<Row> {
  const dir = ctx.runDir('launcher');
  mkdirSync(dir);
  ctx.say(`launcher: ${STARTS} starts of the local launcher, ${STARTS} of \`node -e 0\``);
  const starts: { up: number; firstJob: number }[] = [];
  const node: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    starts.push(await launcherStart(dir, i));
    node.push(await bareNode());
  }
  const up = median(starts.map((s) => s.up));
  const firstJob = median(starts.map((s) => s.firstJob));
  const bare = median(node);
  return {
    id: 'launcher',
    measure: `local launcher start-up, median of ${STARTS}`,
    jobmanager: [figure('spawn → running (P line)', up, 'ms'), figure('→ first job started (F line)', firstJob, 'ms')],
    reference: [figure('`node -e 0`, spawn → exit', bare, 'ms')],
    comparison: [`${ratio(up, bare)} node's own start`],
    details: { starts, nodeBare: node },
  };
}

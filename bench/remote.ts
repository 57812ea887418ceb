import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Client } from 'ssh2';
import type { BenchContext } from './context.js';
import { remoteTrue, writeJobFiles } from './job-files.js';
import { figure, ratio, type Row } from './report.js';
import { median, seconds } from './stats.js';
import { timeQueueWait, type Timed } from './timed-run.js';
import { SshHost } from '../spec/support/sshd.js';

// SSH throughput: N jobs of `Run: "true"` on one SSH host with S slots, against, in the same run:
// raw ssh2 execs on one connection (S in flight), and, with --parallel where it is installed, GNU
// Parallel (`parallel -S S/host`) with and without an ssh ControlMaster. Needs root: it starts its
// own sshd on 127.K.0.2 and a host user, as the specs do (spec/support/sshd.ts).
//
// Issue 10 asks for the median of 5 runs: raw ssh2 and JobManager take turns (--ssh-runs R of
// each, a new supervisor and state directory each time), so that a change in the machine's load
// falls on both sides alike, and the row gives each side's median and their ratio.

const HOST_INDEX = 2;

/** The reference: ssh2 itself, exec('true') with `slots` channels in flight on one connection. */
async function rawSsh2(host: SshHost, n: number, slots: number): Promise<number> {
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    const sock = connect(host.port, host.address, () => {
      sock.setNoDelay(true);
      client.once('ready', () => resolve()).once('error', reject).connect({ sock, username: host.username, privateKey: readFileSync(host.clientKey) });
    });
  });
  const exec = () => new Promise<void>((resolve, reject) => client.exec('true', (err, channel) => (err ? reject(err) : channel.on('close', () => resolve()).resume())));
  const start = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: slots }, async () => {
    while (next++ < n) await exec();
  }));
  const time = seconds(start);
  client.end();
  return time;
}

function parallelInstalled(): boolean {
  return !spawnSync('parallel', ['--version'], { stdio: 'ignore' }).error;
}

function parallel(host: SshHost, knownHosts: string, controlMaster: boolean, dir: string, n: number, slots: number): number | null {
  const options = [`-p ${host.port}`, `-i ${host.clientKey}`, `-o UserKnownHostsFile=${knownHosts}`, '-o StrictHostKeyChecking=yes', '-o BatchMode=yes'];
  if (controlMaster) options.push('-o ControlMaster=auto', `-o ControlPath=${join(dir, 'cm-%C')}`, '-o ControlPersist=60');
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', `seq ${n} | parallel -S ${slots}/${host.username}@${host.address} --ssh 'ssh ${options.join(' ')}' true`], { stdio: ['ignore', 'ignore', 'inherit'] });
  const time = seconds(start);
  if (controlMaster) spawnSync('ssh', ['-O', 'exit', ...options.flatMap((o) => o.split(' ')), `${host.username}@${host.address}`], { stdio: 'ignore' });
  return result.status === 0 ? time : null;
}

export async function sshRow(ctx: BenchContext): Promise<Row> {
  const { sshJobs: n, slots } = ctx.options;
  const measure = `${n.toLocaleString('en-US')} \`true\` jobs on one SSH host, ${slots} slots`;
  if (!SshHost.available()) return { id: 'ssh', measure, jobmanager: [], reference: [], comparison: [], skipped: 'needs root and /usr/sbin/sshd (it starts its own sshd and host user)' };
  const dir = ctx.runDir('ssh');
  mkdirSync(dir);
  const host = await SshHost.start({ index: HOST_INDEX, maxSessions: 20 });
  try {
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, host.knownHostsLine + '\n');
    const jobs = writeJobFiles(join(dir, 'jobs'), n, remoteTrue(host.name), 'r');
    const runs = ctx.options.sshRuns;
    ctx.say(`ssh: raw ssh2 and ${n} jobs on ${host.address}, taking turns, ${runs} runs of each${ctx.options.parallel ? ', then GNU Parallel' : ''}`);
    const raws: number[] = [];
    const jms: Timed[] = [];
    for (let i = 0; i < runs; i++) {
      raws.push(await rawSsh2(host, n, slots));
      const runDir = ctx.runDir('ssh');
      mkdirSync(runDir);
      const config = { LogLevel: 'warn', StateDir: join(runDir, 'state'), KnownHosts: knownHosts, Hosts: [host.hostEntry(slots)] };
      jms.push(await timeQueueWait(runDir, { config }, jobs));
      ctx.say(`ssh: run ${i + 1}: raw ssh2 ${(n / raws[i]).toFixed(0)} jobs/s, JobManager ${(n / jms[i].endToEnd).toFixed(0)} jobs/s end to end`);
    }
    const raw = median(raws);
    const jm = { endToEnd: median(jms.map((t) => t.endToEnd)), pipeline: median(jms.map((t) => t.pipeline)) };
    const perRun = jms.map((t, i) => raws[i] / t.endToEnd);
    const withParallel = ctx.options.parallel && parallelInstalled();
    const plain = withParallel ? parallel(host, knownHosts, false, dir, n, slots) : null;
    const master = withParallel ? parallel(host, knownHosts, true, dir, n, slots) : null;
    const rate = (s: number | null) => (s === null ? null : n / s);
    const reference = [figure(`raw ssh2, one connection (median of ${runs})`, rate(raw), 'jobs/s')];
    if (withParallel) reference.push(figure('GNU Parallel -S (plain ssh)', rate(plain), 'jobs/s'), figure('with ControlMaster', rate(master), 'jobs/s'));
    return {
      id: 'ssh',
      measure,
      jobmanager: [figure(`end to end (median of ${runs})`, rate(jm.endToEnd), 'jobs/s'), figure('first grant → last end', rate(jm.pipeline), 'jobs/s')],
      reference,
      comparison: [
        `${ratio(rate(jm.endToEnd), rate(raw))} raw ssh2's throughput end to end (medians; run by run ${perRun.map((r) => r.toFixed(2)).join(', ')})`,
        `${ratio(rate(jm.pipeline), rate(raw))} first grant → last end`,
      ],
      details: { jobs: n, slots, runs, rawSsh2: raws, jobmanager: jms, ratios: perRun, parallelPlain: plain, parallelControlMaster: master, parallel: ctx.options.parallel ? (withParallel ? 'run' : 'not installed') : 'not asked for' },
    };
  } finally {
    await host.stop();
  }
}

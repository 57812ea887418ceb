// Remote throughput: N jobs of `Run: "true"` on one SSH host with 8 slots, against, in the same
// run: raw ssh2 execs on one connection (8 in flight), and GNU Parallel (`parallel -S 8/host`)
// with and without an ssh ControlMaster. Needs root (it starts its own sshd on 127.0.0.2 and a
// host user, as the specs do) and GNU Parallel for those rows (apt-get install parallel).
//
//   npm run build && node dist/bench/remote.js [--jobs 1000] [--slots 8] [--no-parallel]
//
// --no-parallel leaves GNU Parallel out (its plain-ssh run alone takes about 100 s here).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'ssh2';
import { seconds, timeQueueWait, type Timed } from './timed-run.js';
import { SshHost } from '../spec/support/sshd.js';
import { removeDir, tempDir } from '../spec/support/temp.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '1000' }, slots: { type: 'string', default: '8' }, 'no-parallel': { type: 'boolean', default: false } } });
const N = Number(values.jobs);
const SLOTS = Number(values.slots);

/** The reference: ssh2 itself, exec('true') with SLOTS channels in flight on one connection. */
async function rawSsh2(host: SshHost): Promise<number> {
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
  await Promise.all(Array.from({ length: SLOTS }, async () => {
    while (next++ < N) await exec();
  }));
  const time = seconds(start);
  client.end();
  return time;
}

function parallel(host: SshHost, knownHosts: string, controlMaster: boolean, dir: string): number | null {
  if (spawnSync('parallel', ['--version'], { stdio: 'ignore' }).error) return null;
  const options = [`-p ${host.port}`, `-i ${host.clientKey}`, `-o UserKnownHostsFile=${knownHosts}`, '-o StrictHostKeyChecking=yes', '-o BatchMode=yes'];
  if (controlMaster) options.push('-o ControlMaster=auto', `-o ControlPath=${join(dir, 'cm-%C')}`, '-o ControlPersist=60');
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', `seq ${N} | parallel -S ${SLOTS}/${host.username}@${host.address} --ssh 'ssh ${options.join(' ')}' true`], { stdio: ['ignore', 'ignore', 'inherit'] });
  const time = seconds(start);
  if (controlMaster) spawnSync('ssh', ['-O', 'exit', ...options.flatMap((o) => o.split(' ')), `${host.username}@${host.address}`], { stdio: 'ignore' });
  return result.status === 0 ? time : null;
}

async function jobmanager(host: SshHost, knownHosts: string, dir: string): Promise<Timed> {
  const jobs = join(dir, 'jobs');
  mkdirSync(jobs);
  for (let i = 0; i < N; i++) writeFileSync(join(jobs, `r${i}.yaml`), `ClassType: Remote\nHostname: ${host.name}\nOrder: [{Run: "true"}]\n`);
  spawnSync('sync'); // flushed now, not by the kernel during the timed run
  const config = { LogLevel: 'warn', StateDir: join(dir, 'state'), KnownHosts: knownHosts, Deployment: `bench${Date.now() % 100000}`, Hosts: [host.hostEntry(SLOTS)] };
  return timeQueueWait(dir, config, jobs);
}

if (!SshHost.available()) {
  console.error('bench/remote needs root and /usr/sbin/sshd (it starts its own sshd and host user)');
  process.exit(2);
}
const dir = tempDir('jm-rbench-');
const host = await SshHost.start({ index: 2, maxSessions: 20 });
try {
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, host.knownHostsLine + '\n');
  console.log(`${N} jobs of \`true\` on one SSH host, ${SLOTS} at a time`);
  const raw = await rawSsh2(host);
  const jm = await jobmanager(host, knownHosts, dir);
  const plain = values['no-parallel'] ? null : parallel(host, knownHosts, false, dir);
  const master = values['no-parallel'] ? null : parallel(host, knownHosts, true, dir);
  const row = (name: string, s: number | null) => console.log(`  ${name.padEnd(40)} ${s === null ? '   n/a' : s.toFixed(2).padStart(6) + ' s'}  ${s === null ? '' : `${(N / s).toFixed(0).padStart(5)} jobs/s  ${(raw / s).toFixed(2)}× raw ssh2's throughput`}`);
  row('raw ssh2 execs, one connection', raw);
  row('jobmanager queue --wait (end to end)', jm.endToEnd);
  row('jobmanager first grant → last end', jm.pipeline);
  row('GNU Parallel -S (plain ssh)', plain);
  row('GNU Parallel -S (ControlMaster)', master);
  console.log(JSON.stringify({ jobs: N, slots: SLOTS, rawSsh2: raw, jobmanager: jm, parallelPlain: plain, parallelControlMaster: master }));
} finally {
  await host.stop();
  removeDir(dir);
}

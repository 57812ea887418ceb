import { expect } from 'chai';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { loopbackAddress, SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import { runCli } from './support/cli.js';
import type { JobView } from '../lib/cli/views.js';

// Remote jobs against real OpenSSH sshd processes on 127.0.0.2 and .3, each logging in as a user
// of its own (so each "host" has its own home directory).

interface Shown extends JobView {
  host: string | null;
  runs: { run: number; outcome: string; reason: string }[];
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function waitJobs(ws: Workspace, ...ids: string[]): Promise<Record<string, JobView>> {
  const result = await ws.cli('wait', ...ids, '--json', '--timeout', '60s');
  const jobs = (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs;
  return Object.fromEntries(jobs.map((job) => [job.id, job]));
}

async function show(ws: Workspace, id: string): Promise<Shown> {
  return JSON.parse((await ws.cli('show', id, '--json')).stdout) as Shown;
}

/** The remote job directory of job `id` (default layout). */
async function remoteDir(host: SshHost, ws: Workspace, id: string): Promise<string> {
  const storeId = await (await ws.store()).storeId();
  return join(host.home, '.jobmanager', ws.deployment, storeId, host.name, 'jobs', id);
}

(SshHost.available() ? describe : describe.skip)('remote jobs over SSH', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let host2: SshHost;
  let host3: SshHost;
  let knownHosts: string;

  before(async function () {
    [host2, host3] = await Promise.all([SshHost.start({ index: 2 }), SshHost.start({ index: 3 })]);
    ws = await Workspace.create();
    knownHosts = ws.write('known_hosts', `${host2.knownHostsLine}\n${host3.knownHostsLine}\n`);
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `t${basename(ws.dir).slice(-6)}`, KnownHosts: knownHosts, HostDownAfter: '3s', Hosts: [host2.hostEntry(2), host3.hostEntry(2)] });
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
    await Promise.all([host2?.stop(), host3?.stop()]);
  });

  it('uploads files, runs the steps on the host, records them, and downloads the results', async function () {
    ws.write('data/input.txt', 'b\na\nc\n');
    ws.write('lib/tools.mjs', 'export function count(text) { return text.trim().split("\\n").length; }\n');
    const file = ws.write('remote.yaml', [
      'ClassType: Remote',
      'Hostname: host2',
      'Modules: {tools: lib/tools.mjs}',
      'Uploads: [data/input.txt]',
      'Downloads: [sorted.txt]',
      'LocalOutputDir: out',
      'Order:',
      '  - {Run: "sort input.txt > sorted.txt; echo sorted on $(whoami)", Log: sort.log}',
      '  - {Run: "cat sorted.txt", Outputs: [text]}',
      '  - {Function: count, Inputs: [{text: null}], Outputs: [lines]}',
    ].join('\n'));
    const [id] = await queue(ws, file);
    const job = (await waitJobs(ws, id))[id];
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect(job.result).to.deep.equal({ lines: 3 });
    const shown = await show(ws, id);
    expect(shown.steps.map((s) => s.state)).to.deep.equal(['succeeded', 'succeeded', 'succeeded']);
    expect(readFileSync(join(ws.dir, 'out', 'sorted.txt'), 'utf8')).to.equal('a\nb\nc\n');
    expect((await ws.cli('logs', id, '--step', '1')).stdout).to.equal(`sorted on ${host2.username}\n`);
    expect(host2.run(`cat ${await remoteDir(host2, ws, id)}/job.yaml`)).to.contain('Hostname: host2');
  });

  it('keeps to each host\'s Slots and spreads Hostname: any over the hosts', async function () {
    const ledger = '/tmp/jm-remote-ledger-' + basename(ws.dir);
    writeFileSync(ledger, '');
    const files = Array.from({ length: 12 }, (_, i) =>
      ws.write(`spread/j${i}.yaml`, ['ClassType: Remote', 'Hostname: any', 'Order:', `  - Run: echo "start $(whoami) $(date +%s%N)" >> ${ledger}; sleep 0.3; echo "end $(whoami) $(date +%s%N)" >> ${ledger}`].join('\n')),
    );
    chmodSync(ledger, 0o666); // both hosts' users append to it
    const ids = await queue(ws, ...files);
    const jobs = await waitJobs(ws, ...ids);
    expect(Object.values(jobs).map((j) => j.state)).to.deep.equal(ids.map(() => 'succeeded'));
    const events = readFileSync(ledger, 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([kind, user, t]) => ({ kind, user, t: BigInt(t) }));
    events.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.kind === 'end' ? -1 : 1));
    const running = new Map<string, number>();
    const most = new Map<string, number>();
    for (const e of events) {
      running.set(e.user, (running.get(e.user) ?? 0) + (e.kind === 'start' ? 1 : -1));
      most.set(e.user, Math.max(most.get(e.user) ?? 0, running.get(e.user)!));
    }
    expect(most.get(host2.username), 'host2 at most 2 at once').to.be.at.most(2);
    expect(most.get(host3.username), 'host3 at most 2 at once').to.be.at.most(2);
    expect(most.get(host2.username), 'host2 used').to.be.at.least(1);
    expect(most.get(host3.username), 'host3 used').to.be.at.least(1);
    const store = await ws.store();
    expect(await store.redis.scard(store.keys.remoteJobs(host2.name))).to.equal(0);
    expect(await store.redis.scard(store.keys.remoteJobs(host3.name))).to.equal(0);
  });

  it('kills the remote process tree on Timeout and on cancel', async function () {
    const timed = ws.write('remote-timeout.yaml', ['ClassType: Remote', 'Hostname: host3', 'Timeout: 1s', 'Order:', '  - Run: sleep 300 & echo $! > child.pid; wait'].join('\n'));
    const long = ws.write('remote-long.yaml', ['ClassType: Remote', 'Hostname: host3', 'Order:', '  - Run: sleep 300 & echo $! > child.pid; wait'].join('\n'));
    const [timedId, longId] = await queue(ws, timed, long);
    const childPid = async (id: string) => Number(host3.run(`cat ${await remoteDir(host3, ws, id)}/child.pid 2>/dev/null || true`).trim());
    await waitFor('the long job to start', async () => (await childPid(longId)) > 0);
    await ws.cli('cancel', longId);
    const jobs = await waitJobs(ws, timedId, longId);
    expect(jobs[timedId].state).to.equal('failed');
    expect(jobs[timedId].reason).to.equal('timed out after 1.0s');
    expect(jobs[longId].state).to.equal('cancelled');
    for (const id of [timedId, longId]) {
      const pid = await childPid(id);
      expect(pid).to.be.greaterThan(0);
      // Gone, or a zombie waiting for init to reap it (its parent shell was killed too).
      await waitFor(`the child of job ${id} to be gone`, () => host3.run(`s=$(ps -o stat= -p ${pid}); case "$s" in ""|Z*) echo gone;; *) echo alive;; esac`).trim() === 'gone');
    }
  });

  it('reattaches a job through a kill -9 of sshd, and does not run it again', async function () {
    const ledger = `${host2.home}/ledger-${ws.deployment}`;
    const file = ws.write('survive-sshd.yaml', ['ClassType: Remote', 'Hostname: host2', 'Order:', `  - Run: echo "$JM_JOB_ID $JM_RUN" >> ${ledger}; sleep 2; echo done`].join('\n'));
    const [id] = await queue(ws, file);
    await waitFor('the job to start on host2', () => existsSync(ledger) || null);
    await host2.killAll();
    await host2.restart();
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('succeeded');
    expect(readFileSync(ledger, 'utf8')).to.equal(`${id} 1\n`);
  });

  it('reattaches remote jobs after a kill -9 of the supervisor', async function () {
    const shared = `/tmp/jm-sup-ledger-${ws.deployment}`;
    writeFileSync(shared, '');
    chmodSync(shared, 0o666); // both hosts' users append to it
    const files = Array.from({ length: 4 }, (_, i) => ws.write(`sup/j${i}.yaml`, ['ClassType: Remote', 'Hostname: any', 'Order:', `  - Run: echo "$JM_JOB_ID $JM_RUN" >> ${shared}; sleep 1.5`].join('\n')));
    const ids = await queue(ws, ...files);
    await waitFor('all four to start', () => readFileSync(shared, 'utf8').trim().split('\n').filter(Boolean).length === 4 || null);
    await ws.supervisor!.kill9();
    await ws.startSupervisor();
    const jobs = await waitJobs(ws, ...ids);
    expect(Object.values(jobs).map((j) => j.state)).to.deep.equal(ids.map(() => 'succeeded'));
    const lines = readFileSync(shared, 'utf8').trim().split('\n').sort();
    expect(lines).to.deep.equal(ids.map((id) => `${id} 1`).sort());
  });

  it('follows a remote log live, from before the job has a host until it ends', async function () {
    // host2's two slots are held by jobs that wait for a file, so the followed job is still
    // queued (no host yet) when `logs --follow` starts; they are let go once it says it waits.
    // The job then prints its second line only once the test has seen the first one through
    // `logs --follow`; a log read only at the end would show "gave up" instead.
    const untilFile = (what: string) => `n=0; while [ ! -e ${what} ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done`;
    const holders = await queue(ws, ...['a', 'b'].map((n) => ws.write(`hold-${n}.yaml`, ['ClassType: Remote', 'Hostname: host2', `Order: [{Run: "${untilFile('go')}"}]`].join('\n'))));
    await waitFor('host2 to be full', async () => (await Promise.all(holders.map((id) => show(ws, id)))).every((job) => job.state === 'running') || null);
    const file = ws.write('chatty-remote.yaml', [
      'ClassType: Remote',
      'Hostname: host2',
      'Order:',
      `  - Run: echo line 1; ${untilFile('go')}; if [ -e go ]; then echo line 2; else echo gave up; fi`,
    ].join('\n'));
    const [id] = await queue(ws, file);
    const release = async (jobId: string) => writeFileSync(join(await remoteDir(host2, ws, jobId), 'go'), '');
    const done = new Set<string>();
    const once = (what: string, act: () => Promise<void>) => {
      if (done.has(what)) return;
      done.add(what);
      act().catch((err) => console.error(err));
    };
    const follow = await runCli(['logs', id, '--follow'], ws.env(), ws.dir, (stdout, stderr) => {
      if (stderr.includes('waiting for a host')) once('holders', async () => { await Promise.all(holders.map(release)); });
      if (stdout.includes('line 1\n')) once('job', () => release(id));
    });
    expect(follow.code, follow.stderr).to.equal(0);
    expect(follow.stderr).to.contain(`job ${id} is queued, waiting for a host`);
    expect(follow.stdout).to.equal('line 1\nline 2\n');
    const holdersEnded = await waitJobs(ws, ...holders);
    expect(holders.map((h) => holdersEnded[h].state)).to.deep.equal(['succeeded', 'succeeded']);
  });

  it('gives a host that comes back its jobs again, even when the fetcher started while it was down', async function () {
    // LostAfter 0s: given up on as soon as host3 is down (a job bound to one host waits an hour by default).
    const [first] = await queue(ws, ws.write('before-down.yaml', ['ClassType: Remote', 'Hostname: host3', 'LostAfter: 0s', 'Order: [{Run: "sleep 3"}]'].join('\n')));
    await waitFor('the job to run on host3', async () => (await show(ws, first)).state === 'running' || null);
    await host3.killAll(); // sshd gone, the job goes on: host3 is unreachable, then down (HostDownAfter 3s)
    const given = (await waitJobs(ws, first))[first];
    expect(given.reason).to.match(/host host3 unreachable for/);
    // A new fetcher, which never had anything to follow on host3; then host3 answers again.
    await ws.supervisor!.kill9();
    await ws.startSupervisor();
    await host3.restart();
    const [next] = await queue(ws, ws.write('after-down.yaml', ['ClassType: Remote', 'Hostname: host3', 'Order: [{Run: "echo back"}]'].join('\n')));
    const job = (await waitJobs(ws, next))[next];
    expect(job.state, job.reason ?? '').to.equal('succeeded');
  });

  it('does not take the job files an earlier Redis left on a host for its own jobs\'', async function () {
    // Two deployments of one name, each with a Redis of its own (as after wiping the state
    // directory): both number their jobs from 1. The first one's job 1 leaves its claim, exit
    // status and run log lines on host2; the second one's job 1 must still run, and end as it does.
    const ledger = `/tmp/jm-reuse-ledger-${ws.deployment}`;
    writeFileSync(ledger, '');
    chmodSync(ledger, 0o666);
    const deployment = `${ws.deployment}r`;
    const runOne = async (run: string): Promise<JobView> => {
      const other = await Workspace.create();
      try {
        other.writeConfig({ ...FAST_CONFIG, Deployment: deployment, KnownHosts: knownHosts, Hosts: [host2.hostEntry(2)] });
        await other.startSupervisor();
        const [id] = await queue(other, other.write('j.yaml', ['ClassType: Remote', 'Hostname: host2', 'Order:', `  - Run: ${JSON.stringify(run)}`].join('\n')));
        expect(id).to.equal('1');
        return (await waitJobs(other, id))[id];
      } finally {
        await other.dispose();
      }
    };
    expect((await runOne('exit 4')).state).to.equal('failed');
    const job = await runOne(`echo "$JM_JOB_ID $JM_RUN" >> ${ledger}`);
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect(readFileSync(ledger, 'utf8')).to.equal('1 1\n');
  });
});

(SshHost.available() ? describe : describe.skip)('SSH hosts that refuse or never answer', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let host4: SshHost;
  let silent: Server;

  before(async function () {
    host4 = await SshHost.start({ index: 4 });
    silent = createServer(() => {}); // accepts connections, never says a word
    await new Promise<void>((resolve) => silent.listen(0, loopbackAddress(9), resolve));
    const silentPort = (silent.address() as { port: number }).port;
    ws = await Workspace.create();
    const knownHosts = ws.write('known_hosts', `${host4.knownHostsLine}\n`);
    ws.writeConfig({
      ...FAST_CONFIG, Deployment: `r${basename(ws.dir).slice(-6)}`, KnownHosts: knownHosts, HostDownAfter: '2s',
      Hosts: [host4.hostEntry(2), { Name: 'silent', Hostname: loopbackAddress(9), Port: silentPort, Username: 'nobody', Key: host4.clientKey, Slots: 2 }],
    });
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
    await host4?.stop();
    silent?.close();
  });

  it('refuses a host whose key does not match known_hosts, and says how to fix it', async function () {
    await host4.changeHostKey();
    const [id] = await queue(ws, ws.write('mitm.yaml', ['ClassType: Remote', 'Hostname: host4', 'Order: [{Run: "echo should not run"}]'].join('\n')));
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.reason).to.match(new RegExp(`host key of \\[${host4.address.replace(/\./g, '\\.')}\\]:\\d+ \\(host host4\\) does not match`));
    expect(job.reason).to.contain('ssh-keygen -R');
    expect(host4.run(`ls ${host4.home}/.jobmanager/${ws.deployment} 2>/dev/null || echo none`).trim()).to.equal('none');
  });

  it('gives up on a job granted to a host that is gone (taken out of the config), rather than leave it granted', async function () {
    // Granted to `silent` (which never answers, so the job waits there, granted), then the host
    // is taken out of the config and the supervisor restarted: no follower of it will ever fail.
    const other = await Workspace.create();
    try {
      const silentHost = { Name: 'gone', Hostname: loopbackAddress(9), Port: (silent.address() as { port: number }).port, Username: 'nobody', Key: host4.clientKey, Slots: 1 };
      const config = { ...FAST_CONFIG, Deployment: `g${basename(other.dir).slice(-6)}`, KnownHosts: other.write('known_hosts', `${host4.knownHostsLine}\n`), HostDownAfter: '20s' };
      other.writeConfig({ ...config, Hosts: [host4.hostEntry(1), silentHost] });
      await other.startSupervisor();
      const [id] = await queue(other, other.write('gone.yaml', ['ClassType: Remote', 'Hostname: gone', 'Order: [{Run: "true"}]'].join('\n')));
      await waitFor('the job to be granted a slot of the host', async () => (await show(other, id)).state === 'granted' || null);
      await other.supervisor!.stop();
      other.writeConfig({ ...config, Hosts: [host4.hostEntry(1)] });
      await other.startSupervisor();
      const job = (await waitJobs(other, id))[id];
      expect(job.state).to.equal('failed');
      expect(job.reason).to.match(/host gone .*no longer known/);
    } finally {
      await other.dispose();
    }
  });

  it('marks a host that never answers down, and fails its jobs with the reason', async function () {
    const [id] = await queue(ws, ws.write('silent.yaml', ['ClassType: Remote', 'Hostname: silent', 'Order: [{Run: "true"}]'].join('\n')));
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.reason).to.match(/host silent/);
    const hosts = JSON.parse((await ws.cli('hosts', '--json')).stdout).hosts as { name: string; reachable: boolean; state: string }[];
    expect(hosts.find((h) => h.name === 'silent')).to.include({ reachable: false, state: 'down' });
  });
});

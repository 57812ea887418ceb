import { expect } from 'chai';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FAST_CONFIG, Workspace } from './support/workspace.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import { jobDir } from '../lib/runs/paths.js';
import { parseLogLines, supervisorLog } from './support/supervisor-log.js';
import { nodeLocation } from '../lib/store/keys.js';
import { defaultNodeName } from '../lib/nodes/node-name.js';
import type { JobView } from '../lib/cli/views.js';

// Retention (issue 9, item 4): finished jobs are compacted as they end, with `show`, `jobs`,
// `logs` and a retry working as before; old or surplus finished jobs are removed with their
// directories, never a job that is queued or running; `jobmanager purge` removes them at once.
// A real supervisor, a real redis-server, the real command line.

interface Shown extends JobView {
  runs: { run: number; attempt: number; outcome: string; exitCode: string; reason: string; location: string | null; startedAt: number | null }[];
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function waitJobs(ws: Workspace, ...ids: string[]): Promise<void> {
  const result = await ws.cli('wait', ...ids, '--json', '--timeout', '30s');
  expect(result.code, result.stderr).to.be.oneOf([0, 1]);
}

async function show(ws: Workspace, id: string): Promise<Shown> {
  const result = await ws.cli('show', id, '--json');
  expect(result.code, result.stderr).to.equal(0);
  return JSON.parse(result.stdout) as Shown;
}

async function jobIds(ws: Workspace): Promise<string[]> {
  const result = await ws.cli('jobs', '--all', '--json');
  return (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs.map((j) => j.id).sort((a, b) => Number(a) - Number(b));
}

async function states(ws: Workspace): Promise<Record<string, string>> {
  const result = await ws.cli('jobs', '--all', '--json');
  return Object.fromEntries((JSON.parse(result.stdout) as { jobs: JobView[] }).jobs.map((j) => [j.id, j.state]));
}

/** Until the supervisor has compacted the job (its record holds no spec any more). */
async function compacted(ws: Workspace, id: string): Promise<void> {
  const store = await ws.store();
  await waitFor(`job ${id} to be compacted`, async () => (await store.redis.hexists(store.keys.job(id), 'spec')) === 0);
}

describe('retention', function () {
  this.timeout(90_000);

  describe('compaction of finished jobs', function () {
    let ws: Workspace;
    before(async function () {
      ws = await Workspace.create();
      await ws.startSupervisor();
    });
    after(async function () {
      const crashes = ws?.actorCrashes() ?? [];
      await ws?.dispose();
      expect(crashes, 'no actor may crash').to.deep.equal([]);
    });

    it('keeps what show, jobs and logs print, in at most 1 KB of Redis for a `true` job', async function () {
      const twoSteps = ws.write('two.yaml', 'Order:\n  - Run: echo one\n  - {Run: echo two, Log: two.log}\n');
      const plain = ws.write('plain.yaml', 'Order: [{Run: "true"}]\n');
      const [a, b] = await queue(ws, twoSteps, plain);
      await waitJobs(ws, a, b);
      await compacted(ws, a);
      await compacted(ws, b);

      const job = await show(ws, a);
      expect(job.state).to.equal('succeeded');
      expect(job.steps.map((s) => [s.label, s.state, s.exitCode])).to.deep.equal([['echo one', 'succeeded', 0], ['echo two', 'succeeded', 0]]);
      for (const step of job.steps) expect(step.endedAt! - step.startedAt!).to.be.at.least(0);
      expect([job.location, job.host, job.attempt, job.retries, job.exitCode]).to.deep.equal(['local', nodeLocation(defaultNodeName()), 1, 0, 0]);
      expect(job.runs.map((r) => [r.run, r.attempt, r.outcome, r.location])).to.deep.equal([[1, 1, 'succeeded', 'local']]);
      expect(job.runs[0].startedAt).to.equal(job.startedAt);
      const text = await ws.cli('show', a);
      expect(text.stdout).to.match(/2\s+echo two\s+succeeded/);
      expect(text.stdout).to.match(/Runs\n\s+RUN.*\n\s+1\s+1\s+succeeded/);

      const listed = await ws.cli('jobs', '--json');
      expect((JSON.parse(listed.stdout) as { jobs: JobView[] }).jobs.find((j) => j.id === a)?.state).to.equal('succeeded');
      const log = await ws.cli('logs', a, '--step', '2');
      expect(log.code, log.stderr).to.equal(0);
      expect(log.stdout).to.equal('two\n');

      const store = await ws.store();
      const bytes = Number(await store.redis.memory('USAGE', store.keys.job(b))) + Number((await store.redis.memory('USAGE', store.keys.jobRuns(b))) ?? 0);
      expect(bytes, 'the record and runs of a finished `true` job').to.be.at.most(1024);
    });

    it('runs a compacted failed job again when it is retried, and keeps both runs', async function () {
      const file = ws.write('fails.yaml', 'Order: [{Run: "exit 3"}]\n');
      const [id] = await queue(ws, file);
      await waitJobs(ws, id);
      await compacted(ws, id);
      const store = await ws.store();
      expect(await store.retry([id])).to.deep.equal(['queued']);
      await waitFor(`job ${id} to fail again`, async () => (await show(ws, id)).runs.length === 2 && (await show(ws, id)).state === 'failed');
      const job = await show(ws, id);
      expect(job.runs.map((r) => [r.run, r.outcome, r.exitCode])).to.deep.equal([[1, 'failed', '3'], [2, 'failed', '3']]);
      expect(job.steps.map((s) => [s.label, s.state, s.exitCode])).to.deep.equal([['exit 3', 'failed', 3]]);
    });
  });

  describe('removal', function () {
    let ws: Workspace | null = null;
    afterEach(async function () {
      const crashes = ws?.actorCrashes() ?? [];
      await ws?.dispose();
      ws = null;
      expect(crashes, 'no actor may crash').to.deep.equal([]);
    });

    it('keeps only the newest MaxJobs finished jobs, and never removes a queued or running one', async function () {
      ws = await Workspace.create({ config: { LocalMaxJobs: 2, Retention: { MaxJobs: 2 } } });
      await ws.startSupervisor();
      const sleeper = ws.write('sleeper.yaml', 'Order: [{Run: "sleep 60"}]\n');
      const quick = ws.write('quick.yaml', 'Order: [{Run: "true"}]\n');
      const [s1] = await queue(ws, sleeper);
      const quicks = await queue(ws, quick, quick, quick, quick);
      // (not `wait`: the first of them may be gone before it would look)
      await waitFor('the two oldest finished jobs to go', async () => (await jobIds(ws!)).join() === [s1, quicks[2], quicks[3]].join());
      for (const id of quicks.slice(0, 2)) expect(existsSync(jobDir(ws.stateDir, id)), `StateDir/jobs/${id}`).to.equal(false);
      expect(existsSync(jobDir(ws.stateDir, quicks[3]))).to.equal(true);

      // Both slots busy: the last job waits, queued, while two finished jobs are all that may stay.
      const [s2] = await queue(ws, sleeper);
      await waitFor(`job ${s2} to run`, async () => (await states(ws!))[s2] === 'running');
      const [waiting] = await queue(ws, quick);
      await waitFor(`job ${s1} to run`, async () => (await states(ws!))[s1] === 'running');
      expect(await states(ws)).to.deep.equal({ [s1]: 'running', [quicks[2]]: 'succeeded', [quicks[3]]: 'succeeded', [s2]: 'running', [waiting]: 'queued' });

      // Once they end (the queued one cancelled before it started), the newest two finished jobs are the last ones.
      await ws.cli('cancel', waiting, s1, s2);
      await waitFor('only the two newest finished jobs to stay', async () => (await jobIds(ws!)).join() === [s2, waiting].join());
      const store = await ws.store();
      await waitFor(`job ${waiting} to be compacted`, async () => (await store.redis.hexists(store.keys.job(waiting), 'spec')) === 0);
      const never = await show(ws, waiting);
      expect([never.state, never.runs.length]).to.deep.equal(['cancelled', 0]);
      expect(never.steps.map((s) => [s.label, s.state])).to.deep.equal([['true', 'skipped']]);
    });

    it('removes finished jobs older than MaxAge, and a running job only once it has ended', async function () {
      ws = await Workspace.create({ config: { Retention: { MaxAge: '1s' } } });
      await ws.startSupervisor();
      const [sleeper] = await queue(ws, ws.write('sleeper.yaml', 'Order: [{Run: "sleep 60"}]\n'));
      const [quick] = await queue(ws, ws.write('quick.yaml', 'Order: [{Run: "true"}]\n'));
      await waitFor(`job ${quick} to be removed`, async () => (await jobIds(ws!)).join() === sleeper);
      expect(existsSync(jobDir(ws.stateDir, quick))).to.equal(false);
      expect((await states(ws))[sleeper]).to.equal('running');
      await ws.cli('cancel', sleeper);
      await waitFor(`job ${sleeper} to be removed once it ended`, async () => (await jobIds(ws!)).length === 0);
      expect(existsSync(jobDir(ws.stateDir, sleeper))).to.equal(false);
    });
  });

  describe('jobmanager purge', function () {
    let ws: Workspace;
    let ok: string, failed: string, running: string;
    before(async function () {
      ws = await Workspace.create();
      await ws.startSupervisor();
      [ok, failed, running] = await queue(ws, ws.write('ok.yaml', 'Order: [{Run: "true"}]\n'), ws.write('failed.yaml', 'Order: [{Run: "exit 1"}]\n'), ws.write('sleeper.yaml', 'Order: [{Run: "sleep 60"}]\n'));
      await waitJobs(ws, ok, failed);
    });
    after(async function () {
      await ws.cli('cancel', running);
      const crashes = ws?.actorCrashes() ?? [];
      await ws?.dispose();
      expect(crashes, 'no actor may crash').to.deep.equal([]);
    });

    it('asks what to purge when given nothing', async function () {
      const result = await ws.cli('purge');
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/purge what\?.*--older-than/);
    });

    it('refuses a job that is not finished by name and state, and then removes nothing', async function () {
      const result = await ws.cli('purge', ok, running);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.include(`job ${running} (sleeper) is running: only finished jobs are purged`);
      expect(result.stderr).to.include('nothing was purged');
      const unknown = await ws.cli('purge', '99999');
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include('no job with id 99999');
      expect(await jobIds(ws)).to.include.members([ok, failed, running]);
    });

    it('never removes a job that is not final, even when asked to directly (a job retried after it was chosen)', async function () {
      const store = await ws.store();
      expect(await store.removeJobs([running, '99999'])).to.deep.equal(['running', 'unknown']);
      expect((await store.getJob(running))?.state).to.equal('running');
      expect(await store.runsOf(running)).to.deep.equal([]);
      expect(existsSync(jobDir(ws.stateDir, running))).to.equal(true);
    });

    it('lists with --dry-run, removes with --state, and leaves what does not match', async function () {
      const dry = await ws.cli('purge', '--state', 'failed', '--dry-run');
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.stdout).to.match(new RegExp(`${failed}\\s+failed\\s+failed\\s+.*would be removed`));
      expect(dry.stdout).to.include('1 finished jobs would be removed (--dry-run: nothing was)');
      expect(await jobIds(ws)).to.include(failed);

      const young = await ws.cli('purge', '--older-than', '1h', '--json');
      expect(JSON.parse(young.stdout)).to.deep.equal({ dryRun: false, jobs: [] });

      const bad = await ws.cli('purge', '--state', 'running');
      expect(bad.code).to.equal(2);

      const purged = await ws.cli('purge', '--state', 'failed', '--json');
      expect(purged.code, purged.stderr).to.equal(0);
      const listed = JSON.parse(purged.stdout) as { dryRun: boolean; jobs: { id: string; state: string; result: string }[] };
      expect(listed.jobs.map((j) => [j.id, j.state, j.result])).to.deep.equal([[failed, 'failed', 'removed']]);
      expect((await ws.cli('show', failed)).code).to.equal(2);
      expect(existsSync(jobDir(ws.stateDir, failed))).to.equal(false);
      expect(await jobIds(ws)).to.include.members([ok, running]);
    });

    it('takes ranges and names, and forgets a sweep (its range, name and definition) with its last job', async function () {
      const sweep = ws.write('sw.yaml', 'Name: sw\nEach: {N: ["1", "2", "3"]}\nOrder: [{Run: "true"}]\n');
      const queued = await ws.cli('queue', sweep, '--json');
      expect(queued.code, queued.stderr).to.equal(0);
      const store = await ws.store();
      const ids = (await store.jobIdsBetween(Number(running) + 1, Number(running) + 100)).filter((id) => id !== running);
      expect(ids).to.have.length(3);
      await waitJobs(ws, ...ids);
      const first = ids[0];
      const range = `${ids[0]}-${ids[1]}`;
      const some = await ws.cli('purge', range, '--json');
      expect(some.code, some.stderr).to.equal(0);
      expect((JSON.parse(some.stdout) as { jobs: { id: string }[] }).jobs.map((j) => j.id)).to.deep.equal([ids[0], ids[1]]);
      expect(await store.namedEntries('sw'), 'the sweep keeps its range while a job of it is left').to.deep.equal([`${ids[0]}-${ids[2]}`]);
      const rest = await ws.cli('purge', 'sw');
      expect(rest.code, rest.stderr).to.equal(0);
      expect(rest.stdout).to.include('removed 1 finished jobs');
      expect(await store.namedEntries('sw')).to.deep.equal([]);
      expect(await store.redis.exists(store.keys.sweep(first))).to.equal(0);
      const none = await ws.cli('purge', 'sw');
      expect(none.code).to.equal(2);
      expect(none.stderr).to.match(/no job is named "sw"/);
    });

    it('removes named finished jobs with their directories', async function () {
      expect(existsSync(jobDir(ws.stateDir, ok))).to.equal(true);
      const result = await ws.cli('purge', ok);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include('removed 1 finished jobs');
      expect(existsSync(jobDir(ws.stateDir, ok))).to.equal(false);
      expect(await jobIds(ws)).to.deep.equal([running]);
      const store = await ws.store();
      expect(await store.redis.exists(store.keys.job(ok), store.keys.jobRuns(ok))).to.equal(0);
      expect(await store.namedEntries('ok'), 'the name index forgets it').to.deep.equal([]);
    });
  });

  describe('supervisor.log', function () {
    let ws: Workspace;
    after(async function () {
      await ws?.dispose();
    });

    it('is rotated at LogSize into LogFiles files, and read whole across the rotations', async function () {
      ws = await Workspace.create({ config: { LogLevel: 'debug', Retention: { LogSize: '4KB', LogFiles: 2 } } });
      await ws.startSupervisor();
      const log = join(ws.stateDir, 'supervisor.log');
      const quick = ws.write('quick.yaml', 'Order: [{Run: "true"}]\n');
      // Each job writes a few debug lines; jobs are queued until the log has been rotated twice.
      await waitFor('supervisor.log to be rotated twice', async () => {
        if (existsSync(`${log}.2`)) return true;
        await waitJobs(ws, ...(await queue(ws, quick, quick, quick, quick)));
        return false;
      }, 60_000);
      await ws.supervisor!.stop(); // nothing writes while the files are read
      expect(existsSync(`${log}.3`), 'only LogFiles rotated files are kept').to.equal(false);
      for (const file of [log, `${log}.1`, `${log}.2`]) {
        expect(statSync(file).size, file).to.be.at.most(4096);
        expect(parseLogLines(readFileSync(file, 'utf8'), file).length, file).to.be.above(0);
      }
      // The reader takes the rotated files first: one story, in time order, the live file last.
      const lines = supervisorLog(ws.stateDir);
      const live = parseLogLines(readFileSync(log, 'utf8'));
      expect(lines.length).to.be.above(live.length);
      const times = lines.map((line) => Date.parse(line.time));
      expect(times).to.deep.equal([...times].sort((a, b) => a - b));
      expect(lines.slice(-live.length)).to.deep.equal(live);
    });
  });

  (SshHost.available() ? describe : describe.skip)('on an SSH host', function () {
    let ws: Workspace;
    let host: SshHost;
    before(async function () {
      host = await SshHost.start({ index: 6 });
      ws = await Workspace.create();
      ws.writeConfig({ ...FAST_CONFIG, Deployment: `p${basename(ws.dir).slice(-6)}`, KnownHosts: ws.write('known_hosts', `${host.knownHostsLine}\n`), Hosts: [host.hostEntry(2)] });
      await ws.startSupervisor();
    });
    after(async function () {
      await ws?.dispose();
      await host?.stop();
    });

    it('removes a purged job\'s directory on its host, and says what stays when the host does not answer', async function () {
      const file = ws.write('remote.yaml', `ClassType: Remote\nHostname: ${host.name}\nOrder: [{Run: "echo remote"}]\n`);
      const storeId = await (await ws.store()).storeId();
      const remoteDir = (id: string) => join(host.home, '.jobmanager', ws.deployment, storeId, host.name, 'jobs', id);
      const [first, second] = await queue(ws, file, file);
      await waitJobs(ws, first, second);
      expect(existsSync(remoteDir(first)), remoteDir(first)).to.equal(true);
      const purged = await ws.cli('purge', first);
      expect(purged.code, purged.stderr).to.equal(0);
      expect(existsSync(remoteDir(first))).to.equal(false);

      await host.killAll(); // its sshd gone: the purge goes on without it
      const unreachable = await ws.cli('purge', second);
      expect(unreachable.code, unreachable.stderr).to.equal(0);
      expect(unreachable.stdout).to.include('removed 1 finished jobs');
      expect(unreachable.stderr).to.include(`1 job directories stay on ${host.name}`);
      expect(existsSync(remoteDir(second))).to.equal(true);
      expect((await ws.cli('show', second)).code).to.equal(2);
    });
  });
});

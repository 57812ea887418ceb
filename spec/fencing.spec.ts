import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { join } from 'node:path';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import type { JobView } from '../lib/cli/views.js';
import type { RunEntry } from '../lib/store/job-record.js';
import { buildJobScript } from '../lib/backends/job-script.js';
import { validateJobSpec } from '../lib/jobfile/job-spec.js';
import { removeDir, tempDir } from './support/temp.js';
import { supervisorLog } from './support/supervisor-log.js';

// Never two runs of a job at once, a partition included (issue 9): a host cut off from the
// supervisor (its sshd killed: the job there runs on, detached) while a job runs there. Each job
// appends "begin"/"end" lines with the time to a ledger shared by the hosts (they are all this
// machine), so the spec sees when each run really ran.

interface Shown extends JobView {
  runs: (RunEntry & { stoppedAt?: number })[];
}

interface LedgerRun {
  id: string;
  run: number;
  user: string;
  begin: number;
  end: number | null;
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function show(ws: Workspace, id: string): Promise<Shown> {
  return JSON.parse((await ws.cli('show', id, '--json')).stdout) as Shown;
}

async function waitJob(ws: Workspace, id: string, timeout = '90s'): Promise<JobView> {
  const result = await ws.cli('wait', id, '--json', '--timeout', timeout);
  return (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs[0];
}

/** A ledger the hosts' users can append to: "begin|end <job> <run> <user> <ms>" lines. */
function makeLedger(ws: Workspace, name: string): string {
  const path = `/tmp/jm-fence-${name}-${basename(ws.dir)}`;
  writeFileSync(path, '');
  chmodSync(path, 0o666);
  return path;
}

/** The runs in the ledger, by job and run number. */
function ledgerRuns(path: string): LedgerRun[] {
  const runs = new Map<string, LedgerRun>();
  for (const line of readFileSync(path, 'utf8').trim().split('\n').filter(Boolean)) {
    const [kind, id, run, user, ms] = line.split(' ');
    const entry = runs.get(`${id}.${run}`) ?? { id, run: Number(run), user, begin: Number(ms), end: null };
    if (kind === 'end') entry.end = Number(ms);
    runs.set(`${id}.${run}`, entry);
  }
  return [...runs.values()].sort((a, b) => Number(a.id) - Number(b.id) || a.run - b.run);
}

function sleepJob(ledger: string, seconds: number, hostname = 'any', extra: string[] = []): string {
  const stamp = (kind: string) => `echo "${kind} $JM_JOB_ID $JM_RUN $(whoami) $(date +%s%3N)" >> ${ledger}`;
  return ['ClassType: Remote', `Hostname: ${hostname}`, ...extra, 'Order:', `  - Run: ${JSON.stringify(`${stamp('begin')}; sleep ${seconds}; ${stamp('end')}`)}`].join('\n');
}

/** The host's files of this workspace's jobs (lib/backends/remote/paths.ts). */
async function hostBase(ws: Workspace, host: SshHost): Promise<string> {
  return join(host.home, '.jobmanager', ws.deployment, await (await ws.store()).storeId(), host.name);
}

/** The runs the host's watchdog has stopped (its run log's Z lines). */
async function stoppedRuns(ws: Workspace, host: SshHost): Promise<string[]> {
  const log = host.run(`cat ${await hostBase(ws, host)}/run.log 2>/dev/null || true`);
  return log.split('\n').filter((line) => line.startsWith('Z ')).map((line) => line.split(' ')[1]);
}

/**
 * Each run ran from its begin line to its end line or, when it has none, to the moment its
 * host stopped it (stoppedAt in its run entry): no two of these may overlap.
 */
function overlaps(ledger: LedgerRun[], entries: Shown['runs']): string[] {
  const spans = ledger.map((r) => ({ run: r.run, from: r.begin, to: r.end ?? entries.find((e) => e.run === r.run)?.stoppedAt ?? Infinity }));
  const problems: string[] = [];
  for (const a of spans) {
    for (const b of spans) {
      if (a.run < b.run && a.from < b.to && b.from < a.to) problems.push(`run ${a.run} (${a.from}-${a.to}) overlaps run ${b.run} (${b.from}-${b.to})`);
    }
  }
  return problems;
}

(SshHost.available() ? describe : describe.skip)('fencing: never two runs of a job at once', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let hostA: SshHost;
  let hostB: SshHost;

  before(async function () {
    [hostA, hostB] = await Promise.all([SshHost.start({ index: 11 }), SshHost.start({ index: 12 })]);
    ws = await Workspace.create();
    const knownHosts = ws.write('known_hosts', `${hostA.knownHostsLine}\n${hostB.knownHostsLine}\n`);
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `f${basename(ws.dir).slice(-6)}`, KnownHosts: knownHosts, HostDownAfter: '4s', Hosts: [hostA.hostEntry(1), hostB.hostEntry(1)] });
    await ws.startSupervisor();
  });

  afterEach(function () {
    // A failure here is about timing between hosts and the supervisor: its log tells the story.
    if (this.currentTest?.state !== 'failed') return;
    const lines = supervisorLog(ws.stateDir).filter((line) => line.level !== 'debug').slice(-60);
    console.log(lines.map((line) => `      ${line.time} ${line.actor} ${line.msg}`).join('\n'));
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
    await Promise.all([hostA?.stop(), hostB?.stop()]);
  });

  it('a partitioned host stops its run before the job runs again elsewhere, and the stale run is fenced when the host is back', async function () {
    const ledger = makeLedger(ws, 'partition');
    const [id] = await queue(ws, ws.write('partition.yaml', sleepJob(ledger, 15)));
    const first = await waitFor('run 1 to begin', () => ledgerRuns(ledger)[0]);
    const [cut, other] = first.user === hostA.username ? [hostA, hostB] : [hostB, hostA];
    await cut.killAll(); // sshd gone, every connection with it: the job there runs on, detached
    await waitFor('run 2 to begin on the other host', () => ledgerRuns(ledger).find((r) => r.run === 2) ?? null, 60_000);
    await cut.restart();
    const job = await waitJob(ws, id);
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    const runs = ledgerRuns(ledger);
    const seen = `ledger:\n${readFileSync(ledger, 'utf8')}`;
    expect(runs.map((r) => [r.run, r.user]), `run 1 on the cut-off host, run 2 on the other; ${seen}`).to.deep.equal([[1, cut.username], [2, other.username]]);
    expect(runs[0].end, `the stale run never reached its end; ${seen}`).to.equal(null);
    const shown = await waitFor('run 1 to be recorded as fenced', async () => {
      const s = await show(ws, id);
      return s.runs.find((r) => r.run === 1)?.outcome === 'fenced' ? s : null;
    }, 30_000);
    expect(overlaps(runs, shown.runs), seen).to.deep.equal([]);
    expect(shown.runs.find((r) => r.run === 1)!.reason).to.match(/unreachable for .*stopped by its lease/);
  });

  it('waits for a host that a job is bound to, and lets the run go on when the host is back', async function () {
    const ledger = makeLedger(ws, 'named');
    const [id] = await queue(ws, ws.write('named.yaml', sleepJob(ledger, 6, hostA.name)));
    await waitFor('the run to begin', () => ledgerRuns(ledger)[0]);
    await hostA.killAll();
    await waitFor('the run to be stopped by its lease', async () => (await stoppedRuns(ws, hostA)).includes(`${id}.1`) || null);
    await waitFor('the host to be marked down', async () => {
      const hosts = JSON.parse((await ws.cli('hosts', '--json')).stdout).hosts as { name: string; state: string }[];
      return hosts.find((h) => h.name === hostA.name)?.state === 'down' || null;
    }, 30_000);
    await hostA.restart();
    // Then, the host back, the run goes on (SIGCONT) to its end: one run, succeeded.
    const job = await waitJob(ws, id);
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect(ledgerRuns(ledger).map((r) => [r.run, r.end !== null])).to.deep.equal([[1, true]]);
    expect((await show(ws, id)).runs.map((r) => [r.run, r.outcome])).to.deep.equal([[1, 'succeeded']]);
  });

  it('lets runs go on through a kill -9 of the supervisor longer than the lease', async function () {
    const ledger = makeLedger(ws, 'supervisor');
    // Long enough to be stopped: a lease lapses up to L (5 s here) plus a watchdog tick (1 s)
    // after the last renewal, and the kill comes once the later of the two runs has begun. Runs
    // of 8 s left about 2 s to spare, and this test failed in 2 of 4 runs of the spec here
    // ("both runs to be stopped by their lease") while the rest of it passed.
    const ids = await queue(ws, ws.write('sup-a.yaml', sleepJob(ledger, 16, hostA.name)), ws.write('sup-b.yaml', sleepJob(ledger, 16, hostB.name)));
    await waitFor('both runs to begin', () => ledgerRuns(ledger).length === 2 || null);
    await ws.supervisor!.kill9();
    // Away longer than the lease: each host's watchdog stops its run, and the run waits there.
    await waitFor('both runs to be stopped by their lease', async () => (await stoppedRuns(ws, hostA)).includes(`${ids[0]}.1`) && (await stoppedRuns(ws, hostB)).includes(`${ids[1]}.1`) || null);
    await ws.startSupervisor();
    for (const id of ids) {
      const job = await waitJob(ws, id);
      expect(job.state, job.reason ?? '').to.equal('succeeded');
      expect((await show(ws, id)).runs.map((r) => [r.run, r.outcome])).to.deep.equal([[1, 'succeeded']]);
    }
    expect(ledgerRuns(ledger).map((r) => [r.run, r.end !== null])).to.deep.equal([[1, true], [1, true]]);
  });
});

(SshHost.available() ? describe : describe.skip)('fencing: a short blip', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let host: SshHost;

  before(async function () {
    host = await SshHost.start({ index: 13 });
    ws = await Workspace.create();
    const knownHosts = ws.write('known_hosts', `${host.knownHostsLine}\n`);
    // A lease of 10 s (HostDownAfter 20s): the blip below is well within it.
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `b${basename(ws.dir).slice(-6)}`, KnownHosts: knownHosts, HostDownAfter: '20s', Hosts: [host.hostEntry(1)] });
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
    await host?.stop();
  });

  it('does not stop a job whose host is away for less than the lease', async function () {
    const ledger = makeLedger(ws, 'blip');
    const [id] = await queue(ws, ws.write('blip.yaml', sleepJob(ledger, 4, host.name)));
    await waitFor('the run to begin', () => ledgerRuns(ledger)[0]);
    await host.killAll();
    await host.restart();
    const job = await waitJob(ws, id);
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect(ledgerRuns(ledger).map((r) => [r.run, r.end !== null])).to.deep.equal([[1, true]]);
    expect(await stoppedRuns(ws, host), 'never stopped by its lease').to.deep.equal([]);
  });
});

describe('fencing: a launch that reaches its host too late', function () {
  let dir: string;
  afterEach(() => removeDir(dir));

  /** Runs a remote job's script as its launch would, sent with a host clock stamp `ageCs` old. */
  function launch(ageCs: number): { log: string; claim: string; ran: boolean } {
    dir = tempDir('jm-late-');
    const jobDir = join(dir, 'jobs', '1');
    for (const sub of ['live', 'frozen', 'jobs/1/.jm']) mkdirSync(join(dir, sub), { recursive: true });
    const spec = validateJobSpec({ ClassType: 'Remote', Hostname: 'any', Order: [{ Run: 'touch ran' }] }, { file: join(dir, 'late.yaml') });
    const nowCs = Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);
    const script = buildJobScript(spec, {
      runId: '1.1', runLog: join(dir, 'run.log'), jobId: '1', run: 1, attempt: 1, jobDir, node: 'node', stepRunner: 'x', clock: '',
      remote: { base: dir, leaseCs: 200, sentAfter: nowCs - ageCs },
    });
    // No watchdog file is installed here (the launch batch does that): the run starts none.
    execFileSync('sh', ['-c', script], { cwd: jobDir });
    return { log: readFileSync(join(dir, 'run.log'), 'utf8'), claim: readFileSync(join(jobDir, '.jm', 'claim-1.1'), 'utf8').trim(), ran: existsSync(join(jobDir, 'ran')) };
  }

  it('never starts the run, claims it so that no other copy of the launch can, and says so in the run log', function () {
    const late = launch(1000);
    expect(late.ran).to.equal(false);
    expect(late.claim).to.equal('refused');
    expect(late.log).to.match(/^N 1\.1 \d+\n$/);
  });

  it('starts a launch that comes in time', function () {
    const inTime = launch(0);
    expect(inTime.ran).to.equal(true);
    expect(inTime.log).to.match(/^F 1\.1 \d+ \nX 1\.1 0\n$/);
  });
});

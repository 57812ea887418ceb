import { expect } from 'chai';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import type { JobView } from '../lib/cli/views.js';
import type { RunEntry } from '../lib/store/job-record.js';

// Never two runs of a job at once, a partition included (issue 9): a host cut off from the
// supervisor (its sshd killed: the job there runs on, detached) while a job runs there. Each job
// appends "begin"/"end" lines with the time to a ledger shared by the hosts (they are all this
// machine), so the spec sees when each run really ran.

interface Shown extends JobView {
  runs: (RunEntry & { stoppedAt?: number })[];
}

interface LedgerRun {
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

/** A ledger the hosts' users can append to: "begin|end <run> <user> <ms>" lines. */
function makeLedger(ws: Workspace, name: string): string {
  const path = `/tmp/jm-fence-${name}-${basename(ws.dir)}`;
  writeFileSync(path, '');
  chmodSync(path, 0o666);
  return path;
}

function ledgerRuns(path: string): LedgerRun[] {
  const runs = new Map<number, LedgerRun>();
  for (const line of readFileSync(path, 'utf8').trim().split('\n').filter(Boolean)) {
    const [kind, run, user, ms] = line.split(' ');
    const entry = runs.get(Number(run)) ?? { run: Number(run), user, begin: Number(ms), end: null };
    if (kind === 'end') entry.end = Number(ms);
    runs.set(entry.run, entry);
  }
  return [...runs.values()].sort((a, b) => a.run - b.run);
}

function sleepJob(ledger: string, seconds: number, hostname = 'any'): string {
  const stamp = (kind: string) => `echo "${kind} $JM_RUN $(whoami) $(date +%s%3N)" >> ${ledger}`;
  return ['ClassType: Remote', `Hostname: ${hostname}`, 'Order:', `  - Run: ${JSON.stringify(`${stamp('begin')}; sleep ${seconds}; ${stamp('end')}`)}`].join('\n');
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

  after(async function () {
    const crashes = ws?.supervisor?.log.match(/.*actor exited.*/g) ?? [];
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
});

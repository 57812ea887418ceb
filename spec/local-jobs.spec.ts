import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workspace } from './support/workspace.js';
import { alive } from './support/processes.js';
import { waitFor } from './support/wait-for.js';
import { PROJECT_ROOT } from '../lib/util/paths.js';
import { runLogPath } from '../lib/runs/paths.js';
import type { JobView } from '../lib/cli/views.js';

// Local and Thread jobs end to end: a real supervisor process, a real redis-server, the real
// command line, real job processes.

interface ShownJob extends JobView {
  directory: string | null;
  runs: { run: number; attempt: number; outcome: string; reason: string }[];
}

async function show(ws: Workspace, id: string): Promise<ShownJob> {
  const result = await ws.cli('show', id, '--json');
  expect(result.code, result.stderr).to.equal(0);
  return JSON.parse(result.stdout) as ShownJob;
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function waitJobs(ws: Workspace, ...ids: string[]): Promise<Record<string, JobView>> {
  const result = await ws.cli('wait', ...ids, '--json');
  const jobs = (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs;
  return Object.fromEntries(jobs.map((job) => [job.id, job]));
}

describe('local jobs', function () {
  let ws: Workspace;

  before(async function () {
    ws = await Workspace.create();
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('runs the examples with the outcome each one is written to have', async function () {
    const result = await ws.cli('run', join(PROJECT_ROOT, 'examples'), '--json');
    expect(result.code, 'run exits 1 because two examples fail on purpose').to.equal(1);
    const jobs = (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs;
    const byName = Object.fromEntries(jobs.map((job) => [job.name, job]));
    expect(byName['job'].state).to.equal('succeeded');
    expect(byName['word-count'].state).to.equal('succeeded');
    expect(byName['word-count'].result).to.deep.equal({ lines: '6' });
    expect(byName['mangle-in-a-thread'].state).to.equal('succeeded');
    expect(byName['mangle-in-a-thread'].result).to.deep.equal({ str: 'I just got some var: { a: 1 }', l: 3 });
    expect(byName['flaky'].state).to.equal('succeeded');
    expect(byName['flaky'].attempt).to.equal(2);
    expect(byName['fails-on-purpose'].state).to.equal('failed');
    expect(byName['fails-on-purpose'].reason).to.match(/step 2 .* exited with code 3/);
    expect(byName['too-slow'].state).to.equal('failed');
    expect(byName['too-slow'].reason).to.match(/timed out after 2\.0s/);
  });

  it('passes Outputs to later Inputs, the job definition as self.yaml, and records every step', async function () {
    const [id] = await queue(ws, join(PROJECT_ROOT, 'examples', 'job.yaml'));
    await waitJobs(ws, id);
    const job = await show(ws, id);
    expect(job.state).to.equal('succeeded');
    expect(job.steps.map((s) => [s.label, s.state, s.exitCode])).to.deep.equal([
      ['printHelloWorld', 'succeeded', 0],
      ['mangleSomeInput', 'succeeded', 0],
      ['getSomeMangledInput', 'succeeded', 0],
      ['sendDict', 'succeeded', 0],
    ]);
    for (const step of job.steps) {
      expect(step.startedAt, step.label).to.be.a('number');
      expect(step.endedAt! >= step.startedAt!, step.label).to.equal(true);
    }
    const log = (await ws.cli('logs', id)).stdout;
    expect(log).to.contain('Hello World!');
    expect(log).to.contain("I just got some var: 'kitty'\n6\n");
    expect(log).to.contain("ClassType: 'Local'");
  });

  it('gives each job its own directory, its environment, and a step its own log', async function () {
    const file = ws.write('env.yaml', [
      'Env: {GREETING: "hello there", QUOTED: "it\'s $HOME"}',
      'Order:',
      '  - {Run: "pwd; echo \\"$GREETING|$QUOTED|$JM_JOB_ID|$JM_ATTEMPT\\"", Log: env.log}',
      '  - {Run: "echo second", Outputs: [text]}',
    ].join('\n'));
    const [id] = await queue(ws, file);
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('succeeded');
    expect(job.result).to.deep.equal({ text: 'second' });
    const shown = await show(ws, id);
    const stepLog = readFileSync(join(shown.directory!, 'env.log'), 'utf8');
    expect(stepLog).to.equal(`${shown.directory}\nhello there|it's $HOME|${id}|1\n`);
    expect((await ws.cli('logs', id, '--step', '1')).stdout).to.equal(stepLog);
  });

  it('kills the whole process group on Timeout, TERM first', async function () {
    const file = ws.write('timeout.yaml', [
      'Timeout: 1s',
      'Order:',
      '  - Run: |',
      '      trap "echo got TERM; exit 143" TERM',
      '      sleep 300 & echo $! > child.pid',
      '      wait',
    ].join('\n'));
    const [id] = await queue(ws, file);
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.reason).to.equal('timed out after 1.0s');
    const shown = await show(ws, id);
    const child = Number(readFileSync(join(shown.directory!, 'child.pid'), 'utf8'));
    await waitFor('the background child to be gone', () => !alive(child));
    expect((await ws.cli('logs', id)).stdout).to.contain('got TERM');
  });

  it('kills a job that ignores TERM with KILL after KillGrace', async function () {
    const file = ws.write('stubborn.yaml', ['Timeout: 500ms', 'Order:', '  - Run: trap "" TERM; echo $$ > shell.pid; while :; do sleep 0.1; done'].join('\n'));
    const [id] = await queue(ws, file);
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.reason).to.equal('timed out after 500ms');
    const shell = Number(readFileSync(join((await show(ws, id)).directory!, 'shell.pid'), 'utf8'));
    expect(alive(shell)).to.equal(false);
  });

  it('retries a failing job with backoff and records each run', async function () {
    const file = ws.write('flaky.yaml', ['Retries: 3', 'Order:', '  - Run: echo "attempt $JM_ATTEMPT"; [ "$JM_ATTEMPT" -ge 3 ]'].join('\n'));
    const [id] = await queue(ws, file);
    expect((await waitJobs(ws, id))[id].state).to.equal('succeeded');
    const shown = await show(ws, id);
    expect(shown.attempt).to.equal(3);
    expect(shown.runs.map((r) => [r.attempt, r.outcome])).to.deep.equal([[1, 'failed'], [2, 'failed'], [3, 'succeeded']]);
    expect((await ws.cli('logs', id)).stdout).to.equal('attempt 1\nattempt 2\nattempt 3\n');
  });

  it('fails a job whose retries run out, with the last reason', async function () {
    const file = ws.write('hopeless.yaml', ['Retries: 1', 'Order:', '  - Run: exit 7'].join('\n'));
    const [id] = await queue(ws, file);
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.exitCode).to.equal(7);
    expect(job.attempt).to.equal(2);
    expect(job.reason).to.match(/exited with code 7/);
  });

  it('cancels a running job by killing its process group, and a queued one at once', async function () {
    const running = ws.write('long.yaml', ['Order:', '  - Run: echo $$ > shell.pid; sleep 300'].join('\n'));
    const [id] = await queue(ws, running);
    const dir = join(ws.stateDir, 'jobs', id);
    await waitFor('the job to start', () => existsSync(join(dir, 'shell.pid')) && readFileSync(join(dir, 'shell.pid'), 'utf8').trim() !== '');
    const shell = Number(readFileSync(join(dir, 'shell.pid'), 'utf8'));
    const cancel = await ws.cli('cancel', id, '--json');
    expect(JSON.parse(cancel.stdout).jobs[0].result).to.equal('cancelling');
    expect((await waitJobs(ws, id))[id].state).to.equal('cancelled');
    expect(alive(shell)).to.equal(false);
    const again = await ws.cli('cancel', id, '--json');
    expect(JSON.parse(again.stdout).jobs[0].result).to.equal('cancelled');
  });

  it('runs Thread jobs in the pool and stops them on Timeout', async function () {
    ws.write('slow.mjs', 'export function slow() { return new Promise(() => {}); }\nexport function quick(a, b) { return a + b; }\n');
    const slow = ws.write('slow-thread.yaml', ['ClassType: Thread', 'Timeout: 500ms', 'Modules: {m: slow.mjs}', 'Order: [{Function: slow}]'].join('\n'));
    const quick = ws.write('quick-thread.yaml', ['ClassType: Thread', 'Modules: {m: slow.mjs}', 'Order: [{Function: quick, Inputs: [{a: 2}, {b: 3}], Outputs: [sum]}]'].join('\n'));
    const [slowId, quickId] = await queue(ws, slow, quick);
    const jobs = await waitJobs(ws, slowId, quickId);
    expect(jobs[quickId].state).to.equal('succeeded');
    expect(jobs[quickId].result).to.deep.equal({ sum: 5 });
    expect(jobs[slowId].state).to.equal('failed');
    expect(jobs[slowId].reason).to.equal('timed out after 500ms');
  });

  it('gives a Thread job its log, its directory and earlier Outputs when its steps ask for them', async function () {
    ws.write('steps.mjs', [
      "import { writeFileSync } from 'node:fs';",
      "export function first() { console.log('counting from', 41); return 41; }",
      "export function second(n) { writeFileSync(this.jobDir + '/note.txt', 'made by step 2'); return n + 1; }",
      'export function nothing() {}',
    ].join('\n') + '\n');
    const two = ws.write('two-steps.yaml', ['ClassType: Thread', 'Modules: {m: steps.mjs}', 'Order:', '  - {Function: first, Outputs: [n]}', '  - {Function: second, Inputs: [{n: null}]}'].join('\n'));
    const quiet = ws.write('quiet-thread.yaml', ['ClassType: Thread', 'Modules: {m: steps.mjs}', 'Order: [{Function: nothing}]'].join('\n'));
    const [twoId, quietId] = await queue(ws, two, quiet);
    const jobs = await waitJobs(ws, twoId, quietId);
    expect(jobs[twoId].state).to.equal('succeeded');
    expect(jobs[twoId].result).to.equal(42);
    expect((await ws.cli('logs', twoId)).stdout).to.equal('counting from 41\n');
    expect(readFileSync(join(ws.stateDir, 'jobs', twoId, 'note.txt'), 'utf8')).to.equal('made by step 2');
    expect(jobs[quietId].state).to.equal('succeeded');
    const quietLog = await ws.cli('logs', quietId);
    expect(quietLog.stdout).to.equal('');
    expect(quietLog.stderr).to.match(/wrote no log/);
  });

  it('keeps the logs of Thread jobs apart while several run at once on one pool thread', async function () {
    // A pool thread runs several Thread jobs at once (one thread per core, a job per slot): each
    // prints, waits, prints again, while the others do the same on the same thread.
    ws.write('talk.mjs', [
      "import { setTimeout as sleep } from 'node:timers/promises';",
      'let running = 0;',
      'export async function talk() {',
      "  const seen = ++running; console.log('start', this.params.Who); await sleep(300); console.error('end', this.params.Who);",
      '  const most = Math.max(seen, running--); return most;',
      '}',
    ].join('\n') + '\n');
    const file = ws.write('talkers.yaml', ['Name: talkers', 'ClassType: Thread', 'Modules: {m: talk.mjs}', 'Each: {Who: [a, b, c, d, e, f]}', 'Order: [{Function: talk}]'].join('\n'));
    await queue(ws, file);
    const jobs = await waitJobs(ws, 'talkers');
    expect(Object.values(jobs).map((job) => job.state)).to.deep.equal(Array(6).fill('succeeded'));
    // Each function saw how many ran at once on its thread (a module's state is its thread's).
    expect(Math.max(...Object.values(jobs).map((job) => Number(job.result))), 'jobs at once on one thread').to.be.at.least(2);
    for (const job of Object.values(jobs)) {
      const who = 'abcdef'[Number(/\[(\d)\]$/.exec(job.name)![1])];
      expect((await ws.cli('logs', job.id)).stdout, `${job.name}'s log`).to.equal(`start ${who}\nend ${who}\n`);
    }
  });

  it('ends a Thread job that blocks its thread past Timeout, and runs again the jobs that shared the thread', async function () {
    ws.write('wait.mjs', [
      "import { setTimeout as sleep } from 'node:timers/promises';",
      'export function forever() { for (;;); }',
      'export async function slowly() { await sleep(1500); return this.params.N; }',
    ].join('\n') + '\n');
    const stuck = ws.write('stuck.yaml', ['Name: stuck', 'ClassType: Thread', 'Timeout: 500ms', 'Modules: {m: wait.mjs}', 'Order: [{Function: forever}]'].join('\n'));
    const slow = ws.write('slow-ones.yaml', ['Name: slow-ones', 'ClassType: Thread', 'Modules: {m: wait.mjs}', 'Each: {N: ["1", "2", "3"]}', 'Order: [{Function: slowly}]'].join('\n'));
    await queue(ws, stuck, slow);
    const jobs = Object.values(await waitJobs(ws, 'stuck', 'slow-ones'));
    expect(jobs.find((job) => job.name === 'stuck')).to.include({ state: 'failed', reason: 'timed out after 500ms' });
    const ones = jobs.filter((job) => job.name.startsWith('slow-ones'));
    expect(ones.map((job) => [job.state, job.result])).to.have.deep.members([['succeeded', '1'], ['succeeded', '2'], ['succeeded', '3']]);
    for (const job of ones) {
      const runs = (await show(ws, job.id)).runs;
      expect(runs.slice(0, -1).map((r) => r.outcome), `${job.name}: any run before its last was interrupted, not failed`).to.satisfy((outcomes: string[]) => outcomes.every((o) => o === 'interrupted'));
    }
  });

  it('follows a log live until the job ends', async function () {
    const file = ws.write('chatty.yaml', ['Order:', '  - Run: for i in 1 2 3; do echo line $i; sleep 0.2; done'].join('\n'));
    const [id] = await queue(ws, file);
    const follow = await ws.cli('logs', id, '--follow');
    expect(follow.code).to.equal(0);
    expect(follow.stdout).to.equal('line 1\nline 2\nline 3\n');
  });

  it('exits 0 from queue --wait only when every job succeeded', async function () {
    const good = ws.write('good.yaml', 'Order: [{Run: "true"}]');
    const bad = ws.write('bad.yaml', 'Order: [{Run: "false"}]');
    expect((await ws.cli('queue', '--wait', good)).code).to.equal(0);
    const both = await ws.cli('queue', '--wait', '--json', good, bad);
    expect(both.code).to.equal(1);
    expect(JSON.parse(both.stdout).jobs.map((j: JobView) => j.state)).to.deep.equal(['succeeded', 'failed']);
  });

  it('rejects what reaches the manager without being a valid job, and runs everything else', async function () {
    const store = await ws.store();
    await store.redis.lpush(store.keys.jobQueue, 'not-a-job-id');
    const [broken] = await store.addJobs([{ token: 'broken', name: 'broken', classType: 'Local', file: '/nowhere/broken.yaml', baseDir: '/nowhere', raw: { ClassType: 'Nope', Order: [] } }]);
    const good = ws.write('after-bad.yaml', 'Order: [{Run: "echo fine"}]');
    const [id] = await queue(ws, good);
    expect((await waitJobs(ws, broken, id))[id].state).to.equal('succeeded');
    const rejected = await show(ws, broken);
    expect(rejected.state).to.equal('rejected');
    expect(rejected.reason).to.match(/unknown ClassType "Nope"/);
    const list = JSON.parse((await ws.cli('jobs', '--state', 'rejected', '--json')).stdout).jobs as JobView[];
    expect(list.map((j) => j.reason)).to.satisfy((reasons: string[]) => reasons.some((r) => /not a job id/.test(r)));
  });
});

describe('local capacity', function () {
  let ws: Workspace;

  before(async function () {
    ws = await Workspace.create({ config: { LocalMaxJobs: 3 } });
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('never runs more than LocalMaxJobs at once, frees every slot, and starts runs with both launchers of the starter', async function () {
    const ledger = join(ws.dir, 'ledger');
    const files = Array.from({ length: 15 }, (_, i) =>
      ws.write(`cap/j${i}.yaml`, ['Order:', `  - Run: echo "start $(date +%s%N)" >> ${ledger}; sleep 0.$((RANDOM % 3 + 1)); echo "end $(date +%s%N)" >> ${ledger}`].join('\n')),
    );
    const result = await ws.cli('queue', '--wait', ...files);
    expect(result.code, result.stderr).to.equal(0);
    const events = readFileSync(ledger, 'utf8').trim().split('\n').map((line) => line.split(' ')).map(([kind, t]) => ({ kind, t: BigInt(t) }));
    events.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.kind === 'end' ? -1 : 1));
    let running = 0;
    let most = 0;
    for (const e of events) {
      running += e.kind === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(events.length).to.equal(30);
    expect(most).to.equal(3);
    const store = await ws.store();
    expect(await store.redis.scard(store.keys.localJobs)).to.equal(0);
    // The starter gives runs to its two launchers in turn: each run log holds starts.
    const logs = [...(await store.runLogs()).values()];
    const starts = logs.map((path) => readFileSync(path, 'utf8').split('\n').filter((line) => line.startsWith('F ')).length);
    expect(starts).to.have.length(2);
    expect(starts.every((n) => n > 0), `starts per run log: ${starts.join(', ')}`).to.equal(true);
    expect(starts.reduce((a, b) => a + b, 0)).to.equal(15);
  });
});

describe('a local job whose processes and launcher are killed', function () {
  let ws: Workspace;

  before(async function () {
    ws = await Workspace.create({ config: { PollPeriod: '300ms', LogLevel: 'debug' } });
    await ws.startSupervisor();
  });

  after(async function () {
    await ws.dispose();
  });

  it('is recorded as failed, with the reason, once its run log shows no end', async function () {
    const [id] = await queue(ws, ws.write('killed.yaml', 'Order: [{Run: "sleep 60"}]'));
    const store = await ws.store();
    const record = await waitFor('the job to run', async () => {
      const job = await store.getJob(id);
      return job?.state === 'running' && job.pid ? job : null;
    });
    const launcher = Number(/^P (\d+) /m.exec(readFileSync(runLogPath(ws.stateDir, record.runlog!), 'utf8'))![1]);
    // Nothing is left to record the run's end: the launcher (the starter gets a new one) and the job.
    process.kill(launcher, 'SIGKILL');
    process.kill(-record.pid!, 'SIGKILL');
    const job = (await waitJobs(ws, id))[id];
    expect(job.state).to.equal('failed');
    expect(job.reason).to.match(/ended without recording an exit status \(their launcher was killed\)/);
  });
});

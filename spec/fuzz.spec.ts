import { expect } from 'chai';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { loadJobFiles, type LoadedJob } from '../lib/jobfile/load-files.js';
import { validateJobSpec } from '../lib/jobfile/job-spec.js';
import { loadConfig, type Config } from '../lib/config/config.js';
import { ConfigError, JobSpecError } from '../lib/util/errors.js';
import type { JobView } from '../lib/cli/views.js';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { logMessages, supervisorLog } from './support/supervisor-log.js';
import { SshHost } from './support/sshd.js';
import { compare, findNamed, outside, snapshot } from './support/fs-snapshot.js';
import {
  configFiles, corpus, fuzzSeed, jobFiles, rawDefinitions, Rng, runnableJobs,
  type ConfigKind, type Corpus, type FuzzFile, type JobKind, type RunnableJob,
} from './support/fuzz.js';

// The fuzz pass over job files and the config (issue 5, item 2). Thousands of generated and
// mutated files go through the functions `queue` uses (loadJobFiles, validateJobSpec,
// loadConfig): each is refused with an error that names the file (and its line and key when it
// can), or accepted; an accepted one reads the same when the manager validates it again from
// Redis. Then the nastiest of the accepted jobs run on a real supervisor (Local and Thread jobs,
// and Remote ones on a real sshd with Uploads and Downloads): every job ends as it should, its
// values reach it unchanged, nothing is written outside its directory (and LocalOutputDir), no
// shell payload is ever evaluated, and the supervisor lives through it all.
//
// Replay a failure with the seed it prints: JM_SEED=<seed> npx mocha dist/spec/fuzz.spec.js

const JOB_KINDS: [Exclude<JobKind, 'runnable'>, number][] = [
  ['nasty', 900], ['wrong-type', 400], ['unknown-key', 200], ['traversal', 250], ['deep', 60], ['alias', 80],
  ['tag', 80], ['huge', 40], ['mutated', 600], ['raw-text', 250], ['binary', 60],
];
const CONFIG_KINDS: [ConfigKind, number][] = [
  ['nasty', 400], ['wrong-type', 200], ['unknown-key', 150], ['mutated', 200], ['deep', 20], ['alias', 20], ['tag', 10], ['legacy', 60], ['binary', 20],
];
const RAW_DEFINITIONS = 1000;
const RUNNABLE = { local: 330, thread: 30, remote: 60 };
/** How many accepted runnable jobs are run (the nastiest first). */
const RUN = { local: 240, remote: 40 };

/** C0 and C1 control characters: never in an error message or a table. */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const CONTROL_OR_BREAK = /[\u0000-\u001f\u007f-\u009f]/;
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();

type Verdict = { job: LoadedJob } | { error: JobSpecError } | { crash: unknown };

describe('fuzz: hostile job files and configs', function () {
  this.timeout(240_000);
  const seed = fuzzSeed();
  const rng = new Rng(seed);
  const token = `jmfz${seed.toString(36)}`;
  /** Basenames of the traces a shell payload leaves if it is ever evaluated (see corpus()). */
  const TRACE = new RegExp(`^${token}-((rel-)?\\d+|trav|abs|tag|ctag)$`);
  /** In /tmp, anything named for this run: every payload path there starts with the token. */
  const IN_TMP = new RegExp(`^${token}`);
  let ws: Workspace;
  let host: SshHost | null = null;
  let c: Corpus;
  let runDir: string;
  let runnable: RunnableJob[] = [];
  const accepted = new Set<string>();
  const refusedSample: string[] = [];

  const replay = `seed ${seed} (replay: JM_SEED=${seed} npx mocha dist/spec/fuzz.spec.js)`;
  /** Fails with every problem found (the first 25), the seed, and how to replay. */
  function expectNone(problems: string[], what: string): void {
    const shown = problems.slice(0, 25).map((p) => `  - ${p}`).join('\n');
    expect(problems, `${problems.length} ${what}; ${replay}\n${shown}`).to.deep.equal([]);
  }

  /** Trace files: a payload was evaluated somewhere. */
  function traces(): string[] {
    return [
      ...findNamed(c.canaryDir, TRACE),
      ...findNamed('/tmp', IN_TMP, 1),
      ...findNamed(process.cwd(), TRACE, 1),
      ...findNamed(ws.dir, TRACE),
      ...(host ? findNamed(host.home, TRACE) : []),
    ];
  }

  before(async function () {
    console.log(`      fuzz ${replay}`);
    host = SshHost.available() ? await SshHost.start({ index: 11 }) : null;
    ws = await Workspace.create();
    const canaryDir = join(ws.dir, 'canary');
    c = corpus(token, canaryDir);
    ws.write('canary/target.txt', 'planted: must stay as it is\n');
    ws.write('canary/target.mjs', 'export function echo(x) { return x; }\n');
    const echo = 'export function echo(x) { return x; }\nexport function boom() { throw new Error("boom"); }\n';
    ws.write('in/mods/echo.mjs', echo);
    ws.write('run/mods/echo.mjs', echo);
    runDir = join(ws.dir, 'run');
    if (host) host.run('rm -rf ~/.jobmanager ~/wd; exit 0');
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    await host?.stop();
    // Traces in /tmp (a failed run) go with the run; the spec has reported them already.
    for (const trace of findNamed('/tmp', IN_TMP, 1)) rmSync(trace, { recursive: true, force: true });
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('refuses every bad job file with an error naming it (line and key when it can), or accepts it, as `queue` does', async function () {
    const r = rng.fork(1);
    const world = { corpus: c, moduleRefs: ['../mods/echo.mjs', join(ws.dir, 'in', 'mods', 'echo.mjs'), '../../canary/target.mjs', './../mods/./echo.mjs'] };
    const files: (FuzzFile & { path: string })[] = [];
    for (const [kind, count] of JOB_KINDS) {
      for (const file of jobFiles(r.fork(files.length), world, kind, count)) files.push({ ...file, path: ws.write(`in/${kind}/${file.name}`, '') });
    }
    for (const file of files) writeFileSync(file.path, file.content);
    // The runnable jobs are checked the same way; those accepted may run in the last test.
    const run = runnableJobs(r.fork(99), {
      corpus: c,
      echoModule: r.pick(['mods/echo.mjs', './mods/echo.mjs', '../run/mods/echo.mjs', join(ws.dir, 'run', 'mods', 'echo.mjs')]),
      uploads: uploadFiles(r.fork(98)),
      hosts: host ? [host.name, 'any'] : [],
    }, host ? RUNNABLE : { ...RUNNABLE, remote: 0 });
    for (const job of run) files.push({ kind: 'runnable', name: job.file, content: job.text, path: ws.write(`run/${job.file}`, job.text) });

    const started = Date.now();
    const verdicts = await loadAll(files.map((f) => f.path));
    const problems: string[] = [];
    const counts = new Map<string, { accepted: number; refused: number }>();
    for (const file of files) {
      const verdict = verdicts.get(file.path);
      const count = counts.get(file.kind) ?? { accepted: 0, refused: 0 };
      counts.set(file.kind, count);
      const where = `${file.kind} ${file.path}`;
      if (!verdict) problems.push(`${where}: neither accepted nor refused`);
      else if ('crash' in verdict) problems.push(`${where}: loadJobFiles threw ${String((verdict.crash as Error)?.stack ?? verdict.crash).slice(0, 400)}`);
      else if ('error' in verdict) {
        count.refused++;
        const problem = checkRefusal(verdict.error, file.path, file.content);
        if (problem) problems.push(`${where}: ${problem}`);
        if (refusedSample.length < 40 && r.chance(0.02) && !CONTROL_OR_BREAK.test(file.path)) refusedSample.push(file.path);
      } else {
        count.accepted++;
        accepted.add(file.path);
        const problem = checkAccepted(verdict.job);
        if (problem) problems.push(`${where}: ${problem}`);
      }
    }
    runnable = run.filter((job) => accepted.has(join(runDir, job.file)));
    console.log(`      ${files.length} job files in ${((Date.now() - started) / 1000).toFixed(1)}s: ${[...counts].map(([kind, n]) => `${kind} ${n.accepted}+${n.refused}`).join(', ')} (accepted+refused)`);
    problems.push(...pollution(), ...traces().map((t) => `a payload was evaluated while checking: ${t}`));
    expectNone(problems, 'job files were not handled as they should be');
  });

  it('refuses every bad config file with an error naming it and never showing a secret, or accepts it', function () {
    const r = rng.fork(2);
    const secret = `pw-${token}-do-not-print`;
    const problems: string[] = [];
    const counts: string[] = [];
    let n = 0;
    for (const [kind, count] of CONFIG_KINDS) {
      let refused = 0;
      for (const config of configFiles(r.fork(n), c, secret, kind, count)) {
        const file = ws.write(`cfg/${kind}-${++n}.yaml`, '');
        writeFileSync(file, config.content);
        let loaded: Config;
        try {
          loaded = loadConfig({ file, cwd: ws.dir, env: {} });
        } catch (err) {
          refused++;
          if (!(err instanceof ConfigError)) {
            problems.push(`${kind} ${file}: threw ${(err as Error)?.stack?.slice(0, 300) ?? String(err)}`);
            continue;
          }
          if (!err.file.startsWith(file)) problems.push(`${kind} ${file}: the error names ${err.file}, not the file`);
          if (!err.message.startsWith(file)) problems.push(`${kind} ${file}: the message does not start with the file: ${err.message}`);
          // The key an error names is shown as written, even a secret pasted where a key goes.
          if (err.reason.includes(secret)) problems.push(`${kind} ${file}: the message shows the secret: ${err.message}`);
          if (CONTROL_OR_BREAK.test(err.reason) || (err.key && CONTROL_OR_BREAK.test(err.key))) problems.push(`${kind} ${file}: a control character or line break in the message: ${JSON.stringify(err.message)}`);
          continue;
        }
        const problem = checkConfig(loaded);
        if (problem) problems.push(`${kind} ${file}: accepted, but ${problem}`);
      }
      counts.push(`${kind} ${count - refused}+${refused}`);
    }
    console.log(`      ${n} config files: ${counts.join(', ')} (accepted+refused)`);
    problems.push(...pollution(), ...traces().map((t) => `a payload was evaluated: ${t}`));
    expectNone(problems, 'config files were not handled as they should be');
  });

  it('refuses or accepts every raw definition the manager may read from Redis, and can store what it accepts', function () {
    const r = rng.fork(3);
    const problems: string[] = [];
    let refused = 0;
    const defs = rawDefinitions(r, { corpus: c, moduleRefs: ['x.mjs'] }, RAW_DEFINITIONS);
    for (const [i, text] of defs.entries()) {
      // As the manager does: JSON that does not parse reads as nothing (parseJson).
      let raw: unknown = null;
      try {
        raw = JSON.parse(text);
      } catch {
        raw = null;
      }
      try {
        const spec = validateJobSpec(raw, { file: '', baseDir: ws.dir });
        JSON.stringify(spec); // the manager stores it, outside its error handling
      } catch (err) {
        if (err instanceof JobSpecError) refused++;
        else problems.push(`definition #${i} (${text.slice(0, 120)}…): ${(err as Error)?.message ?? String(err)}`);
      }
    }
    console.log(`      ${defs.length} raw definitions: ${defs.length - refused} accepted, ${refused} refused`);
    problems.push(...pollution());
    expectNone(problems, 'raw definitions were not handled as they should be');
  });

  it('`queue` refuses a sample of them: exit 2, one line per file that names it, nothing queued', async function () {
    expect(refusedSample.length, 'refused files to sample').to.be.greaterThan(5);
    const good = ws.write('good.yaml', 'Order: [{Run: "true"}]\n');
    const result = await ws.cli('queue', good, ...refusedSample);
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stdout).to.equal('');
    const lines = result.stderr.trimEnd().split('\n');
    const problems: string[] = [];
    for (const file of refusedSample) {
      const mine = lines.filter((line) => line.startsWith(`error: ${file}:`) || line.startsWith(`error: ${file} `));
      if (mine.length !== 1) problems.push(`${file}: ${mine.length} error lines`);
    }
    if (lines.length !== refusedSample.length + 1) problems.push(`${lines.length} lines for ${refusedSample.length} files:\n${result.stderr}`);
    if (CONTROL.test(result.stderr)) problems.push(`a control character in the output: ${JSON.stringify(result.stderr).slice(0, 300)}`);
    const store = await ws.store();
    expect(await store.redis.llen(store.keys.jobQueue), 'nothing queued').to.equal(0);
    expectNone(problems, 'refusals were not reported as they should be');
  });

  describe('the nastiest accepted jobs, run by a real supervisor', function () {
    before(async function () {
      const knownHosts = ws.write('known_hosts', host ? `${host.knownHostsLine}\n` : '');
      ws.writeConfig({ ...FAST_CONFIG, LocalMaxJobs: 8, LogLevel: 'info', Deployment: `fz${token.slice(-6)}`, KnownHosts: knownHosts, Hosts: host ? [host.hostEntry(4)] : [] });
      await ws.startSupervisor();
    });

    it('ends every job as expected, keeps every write in its own directory, evaluates no payload, and the supervisor lives', async function () {
      expect(runnable.length, 'runnable jobs accepted').to.be.greaterThan(100);
      const r = rng.fork(4);
      const plain = runnable.filter((job) => job.specialEnv.length === 0);
      const pick = (list: RunnableJob[], n: number) => list.map((job) => ({ job, key: job.nastiness + r.float() * 3 })).sort((a, b) => b.key - a.key).slice(0, n).map((x) => x.job);
      const batch = [...pick(plain.filter((j) => j.classType !== 'Remote'), RUN.local), ...pick(plain.filter((j) => j.classType === 'Remote'), RUN.remote)];
      const problems = await runBatch(batch);
      expectNone(problems, 'problems running the jobs');
    });

    it('runs jobs whose Env names are the job script\'s own (L, R, C, s, IFS) as safely', async function () {
      const batch = runnable.filter((job) => job.specialEnv.length > 0).slice(0, 40);
      if (batch.length === 0) this.skip();
      expectNone(await runBatch(batch), 'problems running jobs with those Env names');
    });
  });

  /** Queues `batch` with the real CLI, waits, and returns every problem found. */
  async function runBatch(batch: RunnableJob[]): Promise<string[]> {
    const problems: string[] = [];
    const outputs = join(ws.dir, 'outputs');
    mkdirSync(outputs, { recursive: true });
    const before = snapshot(ws.dir);
    const hostBefore = host ? snapshot(host.home) : null;
    const started = Date.now();
    const queued = await ws.cli('queue', '--json', ...batch.map((job) => join(runDir, job.file)));
    if (queued.code !== 0) return [`queue refused files that loadJobFiles accepted:\n${queued.stderr.slice(0, 2000)}`];
    const ids = (JSON.parse(queued.stdout) as { queued: { id: string }[] }).queued.map((q) => q.id);
    const waited = await ws.cli('wait', ...ids, '--json', '--timeout', '90s');
    const views = (JSON.parse(waited.stdout) as { jobs: JobView[] }).jobs;
    console.log(`      ran ${batch.length} jobs (${batch.filter((j) => j.classType === 'Remote').length} Remote, ${batch.filter((j) => j.classType === 'Thread').length} Thread) in ${((Date.now() - started) / 1000).toFixed(1)}s: ${summary(views)}`);
    // How each job ended; listed after what escaped, which matters more.
    const outcomes: string[] = [];
    batch.forEach((job, i) => {
      const view = views.find((v) => v.id === ids[i]);
      const where = `job ${ids[i]} (${job.classType}, ${job.file})`;
      if (!view) return outcomes.push(`${where}: not in the wait output`);
      if (view.state !== 'succeeded' && view.state !== 'failed') return outcomes.push(`${where}: ended ${view.state}: ${view.reason}`);
      if (view.state !== job.expect) return outcomes.push(`${where}: ${view.state}, expected ${job.expect}: ${view.reason}`);
      if (view.state === 'succeeded' && job.result !== undefined && !isDeepStrictEqual(view.result, job.result)) {
        outcomes.push(`${where}: result ${JSON.stringify(view.result).slice(0, 300)}, expected ${JSON.stringify(job.result).slice(0, 300)}`);
      }
      if (view.state === 'succeeded' && job.downloads) {
        const dir = resolve(runDir, job.downloads.dir);
        for (const [name, content] of Object.entries(job.downloads.files)) {
          let got: string | null = null;
          try {
            got = readFileSync(join(dir, name), 'utf8');
          } catch {
            got = null;
          }
          if (got !== content) outcomes.push(`${where}: download ${JSON.stringify(name)} in ${dir}: ${got === null ? 'missing' : 'different content'}`);
        }
      }
    });
    // Where jobs may write: their directories, the run logs, the supervisor's files, LocalOutputDir.
    const state = ws.stateDir;
    const allowedHere = (path: string) =>
      path === state || path.startsWith(`${state}/jobs`) || path.startsWith(`${state}/runs`) || /^supervisor\.(log|pid|out)$/.test(path.slice(state.length + 1)) || path.startsWith(outputs);
    problems.push(...outside(compare(before, snapshot(ws.dir)), allowedHere).map((p) => `written outside the jobs' directories: ${p}`));
    for (const planted of ['target.txt', 'target.mjs']) {
      const text = readFileSync(join(c.canaryDir, planted), 'utf8');
      if (!text.startsWith(planted === 'target.txt' ? 'planted' : 'export')) problems.push(`canary/${planted} was changed`);
    }
    if (host && hostBefore) {
      const base = `${host.home}/.jobmanager/${ws.deployment}`;
      const allowedThere = (path: string) => path === host!.home || path === `${host!.home}/.jobmanager` || path.startsWith(base) || path.startsWith(`${host!.home}/wd`);
      problems.push(...outside(compare(hostBefore, snapshot(host.home)), allowedThere).map((p) => `written outside the remote job directories: ${p}`));
    }
    problems.push(...traces().map((t) => `a payload was evaluated, or a file written outside: ${t}`));
    // Tables print names, step labels, reasons and results: no control character may reach a terminal.
    const listed = await ws.cli('jobs', '--all');
    if (CONTROL.test(listed.stdout)) problems.push(`\`jobs\` prints a control character: ${JSON.stringify(listed.stdout.match(new RegExp(`.{0,40}${CONTROL.source}.{0,40}`))?.[0])}`);
    for (const id of ids.slice(0, 15)) { // the nastiest come first
      const shown = await ws.cli('show', id);
      if (CONTROL.test(shown.stdout)) problems.push(`\`show ${id}\` prints a control character: ${JSON.stringify(shown.stdout.match(new RegExp(`.{0,40}${CONTROL.source}.{0,40}`))?.[0])}`);
    }
    if (!ws.supervisor!.running) problems.push('the supervisor died');
    problems.push(...logMessages(supervisorLog(state), /actor exited/).map((line) => `an actor died: ${line}`));
    return [...problems, ...outcomes];
  }

  /** Files the Remote jobs upload: nasty names, known content. */
  function uploadFiles(r: Rng): { ref: string; base: string; content: string }[] {
    const out: { ref: string; base: string; content: string }[] = [];
    const names = ['plain.txt', 'with space.txt', '$(touch x).txt', "it's.txt", '-rf', 'ünïcødé 🙂.dat', 'a"b`c', '*', 'semi;colon', 'new\nline'];
    names.forEach((base, i) => {
      const content = `upload ${i}: ${r.pick(c.shell)}${r.pick(c.unicode)}`.replace(/\n+$/, '');
      ws.write(`run/data/${base}`, content);
      const ref = r.pick([`data/${base}`, `./data/${base}`, `../run/data/${base}`, join(ws.dir, 'run', 'data', base)]);
      out.push({ ref, base, content });
    });
    return out;
  }
});

/** Every path exactly once, as a job or a refusal; a file that makes loadJobFiles throw is a crash. */
async function loadAll(paths: string[]): Promise<Map<string, Verdict>> {
  const verdicts = new Map<string, Verdict>();
  const record = (file: string, verdict: Verdict) => {
    if (verdicts.has(file)) verdicts.set(file, { crash: new Error(`reported twice: ${JSON.stringify(verdicts.get(file)).slice(0, 200)}`) });
    else verdicts.set(file, verdict);
  };
  for (let i = 0; i < paths.length; i += 300) {
    const batch = paths.slice(i, i + 300);
    try {
      const result = await loadJobFiles(batch);
      for (const job of result.jobs) record(job.file, { job });
      for (const error of result.errors) record(error.file, { error });
    } catch {
      // One of them throws: find which, one at a time.
      for (const path of batch) {
        try {
          const result = await loadJobFiles([path]);
          for (const job of result.jobs) record(job.file, { job });
          for (const error of result.errors) record(error.file, { error });
        } catch (err) {
          record(path, { crash: err });
        }
      }
    }
  }
  return verdicts;
}

function checkRefusal(err: JobSpecError, path: string, content: string | Buffer): string | null {
  if (!err.message.startsWith(path)) return `the message does not name the file: ${err.message.slice(0, 200)}`;
  if (!err.reason) return 'the refusal gives no reason';
  if (CONTROL_OR_BREAK.test(err.reason) || (err.key !== null && CONTROL_OR_BREAK.test(err.key))) return `a control character or line break in the message: ${JSON.stringify(err.message).slice(0, 300)}`;
  const lines = content.toString().split('\n').length;
  if (err.line !== null && (err.line < 1 || err.line > lines)) return `line ${err.line} of a ${lines}-line file: ${err.message.slice(0, 200)}`;
  if (err.key !== null && err.line === null) return `names the key ${err.key} but no line: ${err.message.slice(0, 200)}`;
  return null;
}

function checkAccepted(job: LoadedJob): string | null {
  const spec = job.spec;
  if (CONTROL_OR_BREAK.test(spec.name) || spec.name.length > 200) return `accepted the Name ${JSON.stringify(spec.name)}`;
  for (const step of spec.order) {
    const log = step.log;
    if (log !== null && (!/^[^/\\]+$/.test(log) || log === '.' || log === '..' || log.startsWith('.jm') || Buffer.byteLength(log) > 255)) return `accepted the Log ${JSON.stringify(log)}`;
    if (step.kind === 'run' && !step.run.trim()) return 'accepted an empty Run';
    if (CONTROL.test(step.label)) return `accepted the step Name ${JSON.stringify(step.label)}`;
  }
  for (const key of Object.keys(spec.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || key.startsWith('JM_') || key === '__proto__') return `accepted the Env name ${JSON.stringify(key)}`;
  }
  for (const path of spec.remote?.downloads ?? []) if (isAbsolute(path) || path.split('/').includes('..')) return `accepted the Download ${JSON.stringify(path)}`;
  if (spec.remote?.key && /PRIVATE KEY|\n/.test(spec.remote.key)) return 'accepted a private key written into Key';
  let encoded: string;
  try {
    encoded = JSON.stringify(spec);
  } catch (err) {
    return `the spec cannot be stored: ${(err as Error).message}`;
  }
  // The manager validates the definition again from its JSON in Redis: same verdict, same spec.
  let again: unknown;
  try {
    again = validateJobSpec(JSON.parse(JSON.stringify(job.raw)), { file: job.file, baseDir: dirname(job.file) });
  } catch (err) {
    return `accepted by queue, refused by the manager: ${(err as Error).message}`;
  }
  const reread = JSON.stringify(again);
  if (reread !== encoded) {
    let at = 0;
    while (encoded[at] === reread[at]) at++;
    const around = (text: string) => `…${text.slice(Math.max(0, at - 60), at + 120)}…`;
    return `the manager reads another spec from Redis:\n    queue:   ${around(encoded)}\n    manager: ${around(reread)}`;
  }
  return null;
}

function checkConfig(config: Config): string | null {
  const numbers = [config.localMaxJobs, config.remoteMaxJobsPerHost, config.pollPeriodMs, config.retryBackoffMs, config.killGraceMs, config.hostDownAfterMs, config.ec2.maxInstances, config.ec2.idleTimeoutMs];
  if (numbers.some((n) => !Number.isFinite(n) || n < 0)) return `a number is not usable: ${numbers.join(', ')}`;
  if (!isAbsolute(config.stateDir) || !isAbsolute(config.knownHosts)) return 'a path is not absolute';
  if (!/^[A-Za-z0-9_.-]+$/.test(config.deployment)) return `Deployment ${JSON.stringify(config.deployment)}`;
  for (const host of config.hosts) {
    if (!/^[A-Za-z0-9_.-]+$/.test(host.name)) return `host name ${JSON.stringify(host.name)}`;
    if (host.key !== null && /PRIVATE KEY|\n/.test(host.key)) return 'a private key written into Key';
  }
  if (config.ec2.key !== null && /PRIVATE KEY|\n/.test(config.ec2.key)) return 'a private key written into EC2.Key';
  return null;
}

/** Object.prototype as it was: no input may add to it. */
function pollution(): string[] {
  const now = Object.getOwnPropertyNames(Object.prototype).sort();
  return isDeepStrictEqual(now, PROTOTYPE_NAMES) ? [] : [`Object.prototype was changed: ${now.filter((n) => !PROTOTYPE_NAMES.includes(n)).join(', ')}`];
}

function summary(views: JobView[]): string {
  const counts = new Map<string, number>();
  for (const view of views) counts.set(view.state, (counts.get(view.state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
}

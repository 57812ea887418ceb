import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Launcher } from '../lib/backends/local/launcher.js';
import { NATIVE_SPAWN_ADDON } from '../lib/backends/local/native-spawn.js';
import { parseRunLogLine, type RunLogEvent } from '../lib/runs/run-log.js';
import { CallbackLogger } from '../lib/util/log.js';
import { DIST_DIR } from '../lib/util/paths.js';
import { alive, killAll } from './support/processes.js';
import { removeDir, tempDir } from './support/temp.js';
import { waitFor } from './support/wait-for.js';

// The local launcher on its own: a real launcher process, real job processes, its run log read
// back line by line. No supervisor, no Redis: what the launcher promises the starter and the
// fetcher, and nothing else.

/** The fields of /proc/PID/stat that say who a process belongs to; null once it is gone. */
function procStat(pid: number): { state: string; ppid: number; pgrp: number; session: number } | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { state: fields[0], ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) };
  } catch {
    return null;
  }
}

/** Children of `parent` that have ended and that nobody has reaped. */
function zombiesOf(parent: number): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    const stat = procStat(pid);
    return stat?.ppid === parent && stat.state === 'Z';
  });
}

function events(runLog: string): RunLogEvent[] {
  let text = '';
  try {
    text = readFileSync(runLog, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => parseRunLogLine(line) ?? []);
}

function find<K extends RunLogEvent['kind']>(all: RunLogEvent[], kind: K, runId?: string): Extract<RunLogEvent, { kind: K }> | undefined {
  return all.find((e) => e.kind === kind && (runId === undefined || ('runId' in e && e.runId === runId))) as Extract<RunLogEvent, { kind: K }> | undefined;
}

async function waitForLine<K extends RunLogEvent['kind']>(runLog: string, kind: K, runId?: string): Promise<Extract<RunLogEvent, { kind: K }>> {
  return waitFor(`a ${kind} line${runId ? ` for ${runId}` : ''} in ${runLog}`, () => find(events(runLog), kind, runId));
}

// Both ways the launcher can start a job: posix_spawn (native/spawn.c, built at npm install) and
// node's child_process (where it could not be built; JM_LAUNCHER_SPAWN=node asks for it).
for (const spawnWith of ['posix_spawn', 'node'] as const) describe(`the local launcher (spawning with ${spawnWith})`, function () {
  let dir: string;
  let runLog: string;
  let warnings: string[];
  let launcher: Launcher | null;
  let exits: (number | null)[];
  let pids: number[];

  function start(): Launcher {
    launcher = new Launcher('1', runLog, new CallbackLogger('warn', (_level, message) => warnings.push(message)), (code) => exits.push(code));
    return launcher;
  }

  before(function () {
    if (spawnWith === 'node') process.env.JM_LAUNCHER_SPAWN = 'node';
    else expect(existsSync(NATIVE_SPAWN_ADDON), `${NATIVE_SPAWN_ADDON}, built by npm install (npm run build-native says why it is not)`).to.equal(true);
  });

  after(function () {
    delete process.env.JM_LAUNCHER_SPAWN;
  });

  beforeEach(function () {
    dir = tempDir('jm-launcher-');
    runLog = join(dir, 'run.log');
    warnings = [];
    exits = [];
    pids = [];
    launcher = null;
  });

  afterEach(function () {
    launcher?.close();
    // Jobs a failed spec left running, stopped by the process groups the run log names.
    killAll(events(runLog).flatMap((e) => (e.kind === 'forked' ? [-e.pid] : [])).concat(pids));
    removeDir(dir);
  });

  it('starts a job in its directory, stdout and stderr to job.log, stdin empty, and records its start and exit status', async function () {
    const jobDir = join(dir, 'a');
    mkdirSync(jobDir);
    const before = Date.now();
    const l = start();
    l.launch('7.1', jobDir, 'echo out; echo err >&2; pwd; cat; exit 3');
    l.close();
    const quit = await waitForLine(runLog, 'quit');
    const all = events(runLog);
    const kinds = all.map((e) => e.kind);
    expect(kinds[0]).to.equal('launcher');
    expect(kinds.at(-1)).to.equal('quit');
    expect(kinds.slice(1, -1)).to.have.members(['forked', 'reaped', 'inputClosed']); // E may come before R
    expect(kinds.indexOf('forked')).to.be.below(kinds.indexOf('reaped'));
    const forked = find(all, 'forked', '7.1')!;
    const reaped = find(all, 'reaped', '7.1')!;
    expect(find(all, 'launcher')!.pid).to.equal(l.pid);
    expect(reaped.status, 'wait status of exit 3').to.equal(3 << 8);
    expect(forked.at).to.be.within(before, reaped.at);
    expect(reaped.at).to.be.within(forked.at!, quit.at);
    expect(readFileSync(join(jobDir, 'job.log'), 'utf8')).to.equal(`out\nerr\n${jobDir}\n`);
    expect(exits, 'a launcher told to close is not reported as dying').to.deep.equal([]);
    expect(warnings).to.deep.equal([]);
  });

  it('starts a job with no signal ignored or blocked, though the launcher itself ignores some', async function () {
    const l = start();
    l.launch('6.1', join(dir, 'g'), "grep -E '^Sig(Ign|Blk):' /proc/$$/status");
    l.close();
    await waitForLine(runLog, 'quit');
    const masks = Object.fromEntries(readFileSync(`${dir}/g/job.log`, 'utf8').trim().split('\n').map((line) => line.split(':\t')).map(([name, hex]) => [name, BigInt(`0x${hex}`)]));
    // glibc's posix_spawn leaves its two internal signals (32 and 33, below SIGRTMIN) ignored in
    // the child; no program uses them, and glibc sets its own handlers when it needs them.
    const GLIBC_INTERNAL = (1n << 31n) | (1n << 32n);
    expect(masks.SigBlk, 'signals blocked').to.equal(0n);
    expect(masks.SigIgn! & ~GLIBC_INTERNAL, 'signals ignored').to.equal(0n);
  });

  it('runs each job as the leader of its own session and process group, and records a kill as its signal', async function () {
    const l = start();
    l.launch('8.1', join(dir, 'b'), 'exec sleep 600');
    l.flush();
    const { pid } = await waitForLine(runLog, 'forked', '8.1');
    const stat = procStat(pid)!;
    expect(stat.pgrp, 'process group id').to.equal(pid);
    expect(stat.session, 'session id').to.equal(pid);
    expect(stat.session).to.not.equal(procStat(l.pid!)!.session);
    expect(procStat(l.pid!)!.session, "the launcher's own session").to.equal(l.pid);
    process.kill(-pid, 'SIGTERM');
    const reaped = await waitForLine(runLog, 'reaped', '8.1');
    expect(reaped.status, 'wait status of a TERM').to.equal(15);
  });

  it('gives a job it cannot start a K line with the reason, and starts the others', async function () {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const l = start();
    l.launch('1.1', join(dir, 'no', 'such', 'dir'), 'true');
    l.launch('2.1', join(dir, 'c'), `: ${'x'.repeat(200_000)}`); // longer than one exec argument may be
    l.launch('3.1', file, 'true');
    l.launch('4.1', join(dir, 'd'), 'true');
    l.close();
    await waitForLine(runLog, 'quit');
    const all = events(runLog);
    expect(find(all, 'notStarted', '1.1')?.reason).to.match(/job directory .*no\/such\/dir: no such file or directory/i);
    expect(find(all, 'notStarted', '2.1')?.reason).to.match(/argument list too long/i);
    expect(find(all, 'notStarted', '3.1')?.reason).to.match(/not a directory/i);
    expect(find(all, 'reaped', '4.1')?.status).to.equal(0);
    expect(find(all, 'forked', '1.1'), 'a job without a directory is never started').to.equal(undefined);
  });

  it('writes E when its input closes and Q once its last job is reaped, then exits', async function () {
    const l = start();
    l.launch('5.1', join(dir, 'e'), 'exec sleep 600');
    l.close();
    const { pid } = await waitForLine(runLog, 'forked', '5.1');
    await waitForLine(runLog, 'inputClosed');
    expect(find(events(runLog), 'quit'), 'no Q while a job runs').to.equal(undefined);
    expect(alive(l.pid!)).to.equal(true);
    process.kill(-pid, 'SIGKILL');
    await waitForLine(runLog, 'quit');
    expect(events(runLog).at(-1)?.kind).to.equal('quit');
    await waitFor('the launcher to exit', () => !alive(l.pid!));
  });

  it('outlives a parent killed with SIGKILL mid-launch, records every end, and leaves no zombie', async function () {
    // The parent stands for the starter: it launches a job that waits, then one more every few
    // milliseconds, until it is killed.
    const parent = spawn(process.execPath, ['--input-type=module', '-e', `
      const { Launcher } = await import(${JSON.stringify(join(DIST_DIR, 'lib', 'backends', 'local', 'launcher.js'))});
      const [runLog, dir] = process.argv.slice(1);
      const launcher = new Launcher('1', runLog, { debug() {}, info() {}, warn() {}, error() {} }, () => process.exit(3));
      launcher.launch('hold.1', dir + '/hold', 'exec sleep 600');
      let n = 0;
      setInterval(() => { launcher.launch('j' + ++n + '.1', dir + '/j' + n, 'true'); launcher.flush(); }, 2);
    `, runLog, dir], { stdio: 'ignore' });
    pids.push(parent.pid!);
    await waitFor('20 jobs started', () => events(runLog).filter((e) => e.kind === 'forked').length >= 20);
    process.kill(parent.pid!, 'SIGKILL');
    const launcherPid = find(events(runLog), 'launcher')!.pid;
    await waitForLine(runLog, 'inputClosed');
    expect(alive(launcherPid), 'the launcher outlives its parent').to.equal(true);
    const started = () => events(runLog).filter((e) => e.kind === 'forked').map((e) => (e as { runId: string }).runId);
    const reaped = () => new Set(events(runLog).filter((e) => e.kind === 'reaped').map((e) => (e as { runId: string }).runId));
    await waitFor('every short job reaped', () => started().every((id) => id === 'hold.1' || reaped().has(id)));
    expect(zombiesOf(launcherPid), 'children left unreaped').to.deep.equal([]);
    const hold = find(events(runLog), 'forked', 'hold.1')!;
    process.kill(-hold.pid, 'SIGKILL');
    await waitForLine(runLog, 'quit');
    const all = events(runLog);
    expect(new Set(started())).to.deep.equal(reaped());
    expect(find(all, 'reaped', 'hold.1')!.status, 'wait status of a KILL').to.equal(9);
    expect(all.filter((e) => e.kind === 'reaped' && e.runId !== 'hold.1' && e.status !== 0)).to.deep.equal([]);
    await waitFor('the launcher to exit', () => !alive(launcherPid));
  });

  it("keeps the supervisor's secrets from the launcher and its jobs, and gives the jobs node's own variables", async function () {
    const set = { AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', JM_REDIS_URL: 'redis://:hunter2@127.0.0.1:6399', NODE_OPTIONS: '--max-old-space-size=100' };
    const saved = Object.fromEntries(Object.keys(set).map((name) => [name, process.env[name]]));
    Object.assign(process.env, set);
    try {
      const l = start();
      l.launch('9.1', join(dir, 'f'), 'env');
      l.flush();
      await waitForLine(runLog, 'reaped', '9.1');
      const launcherEnv = readFileSync(`/proc/${l.pid}/environ`, 'utf8');
      const jobEnv = readFileSync(join(dir, 'f', 'job.log'), 'utf8');
      for (const text of [launcherEnv, jobEnv]) expect(text).to.not.include('wJalrXUtnFEMI').and.to.not.include('hunter2');
      expect(jobEnv).to.match(/^NODE_OPTIONS=--max-old-space-size=100$/m);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { SshHost } from './support/sshd.js';
import type { JobView } from '../lib/cli/views.js';

// Hosts that offer only a shell (issue 9.3): an sshd with no `Subsystem sftp`, and no Python on
// its PATH, so that jobs there are started by sh rather than spawner.py. Every job runs
// there as it runs on a host with SFTP, and each scenario runs on both kinds of host and must
// end the same way: the same states, results, files on the host and files downloaded. Downloads
// are fetched whatever the outcome (DownloadsOn, issue 11.6), and one that fails is shown on the
// job (`show`, `show --json`, the web page).

interface Shown extends JobView {
  runs: { run: number; outcome: string; reason: string }[];
}

(SshHost.available() ? describe : describe.skip)('hosts that offer only a shell (no SFTP)', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let withSftp: SshHost;
  let shellOnly: SshHost;
  let config: Record<string, unknown>;

  before(async function () {
    [withSftp, shellOnly] = await Promise.all([SshHost.start({ index: 2 }), SshHost.start({ index: 3, sftp: false, python: false })]);
    ws = await Workspace.create();
    const knownHosts = ws.write('known_hosts', `${withSftp.knownHostsLine}\n${shellOnly.knownHostsLine}\n`);
    config = { ...FAST_CONFIG, Deployment: `t${basename(ws.dir).slice(-6)}`, KnownHosts: knownHosts, SshConfig: null, Web: { Listen: '127.0.0.1:0' }, Hosts: [withSftp.hostEntry(2), shellOnly.hostEntry(2)] };
    ws.writeConfig(config);
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
    await Promise.all([withSftp?.stop(), shellOnly?.stop()]);
  });

  /** Runs the job file (`HOST` replaced by each host's name) on both hosts; their views, SFTP host first. */
  async function onBoth(name: string, lines: string[]): Promise<[Shown, Shown]> {
    const files = [withSftp, shellOnly].map((host) => ws.write(`${name}-${host.name}.yaml`, lines.join('\n').replaceAll('HOST', host.name)));
    const queued = await ws.cli('queue', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = Workspace.ids(queued.stdout);
    await ws.cli('wait', ...ids, '--timeout', '60s');
    const shown = await Promise.all(ids.map(async (id) => JSON.parse((await ws.cli('show', id, '--json')).stdout) as Shown));
    return [shown[0], shown[1]];
  }

  /** What `show` says of a job, without what differs between any two jobs (ids, names, times, hosts). */
  function outcome(job: Shown): unknown {
    return { state: job.state, reason: job.reason, result: job.result, steps: job.steps.map((s) => s.state), runs: job.runs.map((r) => r.outcome) };
  }

  /** The web page's address, as the supervisor printed it. */
  function webUrl(): string {
    const url = /web\s+(http:\/\/\S+\/)/.exec(ws.supervisor!.log)?.[1];
    if (!url) throw new Error(`the supervisor printed no web address:\n${ws.supervisor!.log}`);
    return url;
  }

  function noSftpLines(host: SshHost): string[] {
    return ws.supervisor!.log.split('\n').filter((line) => line.includes(`SSH ${host.name}: no SFTP`));
  }

  it('runs a job that needs no files without touching SFTP', async function () {
    const [a, b] = await onBoth('plain', ['ClassType: Remote', 'Hostname: HOST', 'Order:', '  - {Run: "echo ok", Outputs: [said]}']);
    expect(b.state, b.reason ?? '').to.equal('succeeded');
    expect(b.result).to.deep.equal({ said: 'ok' });
    expect(outcome(b)).to.deep.equal(outcome(a));
    expect(noSftpLines(shellOnly), 'SFTP was not even asked for').to.deep.equal([]);
  });

  it('starts each job in a session of its own, by spawner.py where there is Python and by sh where there is not', async function () {
    // The last step runs in the job's own shell: $$ is the job's first process.
    const [a, b] = await onBoth('session', ['ClassType: Remote', 'Hostname: HOST', 'Order:', `  - {Run: 'echo "$(ps -o sid= -p $$ | tr -d " ") $$ $(sed -n "s/^SigIgn:\\t//p" /proc/$$/status)"', Outputs: [said]}`]);
    const [sidA, pidA, ignoredA] = String((a.result as { said: string }).said).split(' ');
    const [sidB, pidB, ignoredB] = String((b.result as { said: string }).said).split(' ');
    expect(sidA, 'with Python: a session of its own').to.equal(pidA);
    expect(sidB, 'with sh: a session of its own').to.equal(pidB);
    // glibc's posix_spawn leaves its two internal signals (32 and 33) ignored, as in the local
    // launcher (launcher.spec.ts); Python's own SIGPIPE and SIGXFSZ are set back to their defaults.
    const GLIBC_INTERNAL = (1n << 31n) | (1n << 32n);
    expect(BigInt(`0x${ignoredA}`) & ~GLIBC_INTERNAL, 'spawner.py: every signal at its default').to.equal(0n);
    // sh starts a background command with SIGINT and SIGQUIT ignored (POSIX, without job
    // control), and they stay ignored through setsid and exec; nothing else.
    expect(BigInt(`0x${ignoredB}`) & ~0b110n, 'sh: nothing ignored but SIGINT and SIGQUIT').to.equal(0n);
    const said = (host: SshHost) => ws.supervisor!.log.split('\n').filter((line) => line.includes(`SSH ${host.name}: jobs are started by sh`));
    expect(said(withSftp)).to.deep.equal([]);
    expect(said(shellOnly)).to.have.length(1);
  });

  it('runs modules and Function steps (the runtime copied over exec channels)', async function () {
    ws.write('mods/calc.mjs', 'export function sum(a, b) { return a + b; }\nexport function twice(x) { return { value: x * 2, host: this.jobDir.includes("/jobs/") }; }\n');
    const [a, b] = await onBoth('functions', [
      'ClassType: Remote',
      'Hostname: HOST',
      'Modules: {calc: mods/calc.mjs}',
      'Order:',
      '  - {Function: sum, Module: calc, Inputs: [{a: 20}, {b: 1}], Outputs: [total]}',
      '  - {Function: twice, Module: calc, Inputs: [{total: null}], Outputs: [answer]}',
    ]);
    expect(b.state, b.reason ?? '').to.equal('succeeded');
    expect(b.result).to.deep.equal({ answer: { value: 42, host: true } });
    expect(outcome(b)).to.deep.equal(outcome(a));
    expect(noSftpLines(withSftp), 'the host with SFTP uses it').to.deep.equal([]);
    expect(noSftpLines(shellOnly).length, 'decided once per connection (the starter\'s)').to.equal(1);
  });

  it('uploads a tree of binary files and a large file, and downloads results, byte for byte', async function () {
    const tree = join(ws.dir, 'tree');
    ws.write('tree/bin/all-bytes.bin', '');
    const allBytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
    const big = randomBytes(8 * 1024 * 1024 + 7);
    ws.write('tree/empty', '');
    ws.write('tree/deep/er/no-newline.txt', 'no newline at the end');
    ws.write("tree/it's a name with spaces & $dollars.txt", 'quoted\n');
    execFileSync('mkdir', ['-p', join(tree, 'empty-dir')]);
    const write = (path: string, data: Buffer) => execFileSync('sh', ['-c', 'cat > "$1"', 'sh', join(ws.dir, path)], { input: data });
    write('tree/bin/all-bytes.bin', allBytes);
    write('big.bin', big);
    // The listing and checksums of the tree as it arrived on the host, and two files made there.
    const sums = 'cd tree && find . | sort && find . -type f -exec cksum {} + | sort';
    const [a, b] = await onBoth('files', [
      'ClassType: Remote',
      'Hostname: HOST',
      'Uploads: [tree, big.bin]',
      'Downloads: [made.bin, big.bin]',
      'LocalOutputDir: out-HOST',
      'Order:',
      '  - {Run: "head -c 300000 /dev/urandom > made.bin && cksum < made.bin > made.sum"}',
      `  - {Run: "${sums}", Outputs: [sums]}`,
    ]);
    expect(b.state, b.reason ?? '').to.equal('succeeded');
    expect(outcome(b)).to.deep.equal(outcome(a));
    const local = execFileSync('sh', ['-c', sums], { cwd: ws.dir, encoding: 'utf8' }).trim();
    expect((b.result as { sums: string }).sums, 'the tree on the shell-only host').to.equal(local);
    for (const host of [withSftp, shellOnly]) {
      const out = join(ws.dir, `out-${host.name}`);
      expect(readFileSync(join(out, 'big.bin')).equals(big), `big.bin back from ${host.name}`).to.equal(true);
      const made = readFileSync(join(out, 'made.bin'));
      expect(made.length).to.equal(300000);
      const storeId = await (await ws.store()).storeId();
      const remoteSum = host.run(`cat ${join(host.home, '.jobmanager', ws.deployment, storeId, host.name, 'jobs', host === withSftp ? a.id : b.id, 'made.sum')}`);
      expect(execFileSync('cksum', { input: made, encoding: 'utf8' }), `made.bin from ${host.name}`).to.equal(remoteSum);
    }
  });

  it('a download that fails is the same failure on both hosts, shown on the job', async function () {
    const [a, b] = await onBoth('missing', [
      'ClassType: Remote',
      'Hostname: HOST',
      'Downloads: [here.txt, missing.txt, adir]',
      'LocalOutputDir: missing-HOST',
      'Order:',
      '  - {Run: "echo here > here.txt; mkdir adir"}',
    ]);
    expect(b.state, b.reason ?? '').to.equal('succeeded');
    expect(outcome(b)).to.deep.equal(outcome(a));
    expect(b.downloads?.run).to.equal(1);
    expect(b.downloads?.failed.map((f) => f.file), 'what `show --json` says failed').to.deep.equal(['missing.txt', 'adir']);
    expect(b.downloads?.failed[0].reason).to.equal('No such file');
    expect(a.downloads?.failed.map((f) => f.file), 'the same over SFTP').to.deep.equal(['missing.txt', 'adir']);
    expect(a.downloads?.failed[0].reason).to.equal('No such file');
    for (const host of [withSftp, shellOnly]) {
      expect(readFileSync(join(ws.dir, `missing-${host.name}`, 'here.txt'), 'utf8')).to.equal('here\n');
      expect(existsSync(join(ws.dir, `missing-${host.name}`, 'missing.txt')), 'no file is left for a failed download').to.equal(false);
    }
    const text = (await ws.cli('show', b.id)).stdout;
    expect(text).to.match(/downloads +failed in run 1: missing\.txt \(No such file\); adir \(Not a regular file\)/);
    const page = await (await fetch(`${webUrl()}jobs/${b.id}`)).text();
    expect(page, 'the web page\'s job view').to.contain('failed in run 1: missing.txt (No such file)');
  });

  it('fetches the Downloads of a job that failed (its evidence), on both hosts alike', async function () {
    const [a, b] = await onBoth('evidence', [
      'ClassType: Remote',
      'Hostname: HOST',
      'Downloads: [trace.log]',
      'LocalOutputDir: evidence-HOST',
      'Order:',
      '  - {Run: "echo what went wrong > trace.log; exit 3"}',
    ]);
    expect(b.state).to.equal('failed');
    expect(outcome(b)).to.deep.equal(outcome(a));
    for (const host of [withSftp, shellOnly]) expect(readFileSync(join(ws.dir, `evidence-${host.name}`, 'trace.log'), 'utf8')).to.equal('what went wrong\n');
    expect(b.downloads, 'nothing failed to download').to.equal(null);
  });

  it('with DownloadsOn: success, leaves a failed job\'s Downloads on the host', async function () {
    await ws.supervisor!.stop();
    ws.writeConfig({ ...config, DownloadsOn: 'success' });
    await ws.startSupervisor();
    const [a, b] = await onBoth('no-evidence', [
      'ClassType: Remote',
      'Hostname: HOST',
      'Downloads: [trace.log]',
      'LocalOutputDir: no-evidence-HOST',
      'Order:',
      '  - {Run: "echo what went wrong > trace.log; exit 3"}',
    ]);
    expect([a.state, b.state]).to.deep.equal(['failed', 'failed']);
    for (const host of [withSftp, shellOnly]) expect(existsSync(join(ws.dir, `no-evidence-${host.name}`, 'trace.log'))).to.equal(false);
  });
});

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workspace } from './support/workspace.js';
import { CLI_MAIN } from './support/cli.js';
import { PROJECT_ROOT } from '../lib/util/paths.js';

// The command line as a user meets it: help for each command, refusals of what it does not
// understand (exit 2, the command's usage, nothing changed), global options anywhere, bash
// completion, and the progress shown while it waits.

describe('the command line', function () {
  let ws: Workspace;
  let job: string;

  before(async function () {
    ws = await Workspace.create();
    await ws.startSupervisor();
    job = ws.write('hello.yaml', 'Name: hello\nOrder: [{Run: "echo hello"}]\n');
  });

  after(async function () {
    await ws?.dispose();
  });

  async function jobCount(): Promise<number> {
    const listed = await ws.cli('jobs', '--all', '--json');
    return (JSON.parse(listed.stdout) as { jobs: unknown[] }).jobs.length;
  }

  it("shows a command's own options and an example, with --help and with help COMMAND", async function () {
    for (const args of [['queue', '--help'], ['help', 'queue']]) {
      const result = await ws.cli(...args);
      expect(result.code, args.join(' ')).to.equal(0);
      expect(result.stdout).to.match(/^Usage: jobmanager queue \[options\] <files\.\.\.>/);
      expect(result.stdout).to.contain('--wait').and.to.contain('--timeout <duration>');
      expect(result.stdout, 'the global options too').to.contain('--config <file>').and.to.contain('--json');
      expect(result.stdout).to.match(/Examples:\n {2}\$ jobmanager queue /);
      expect(result.stdout, "not another command's options").not.to.contain('--follow');
    }
    const logs = await ws.cli('logs', '--help');
    expect(logs.stdout).to.contain('-f, --follow').and.to.contain('--step <n>');
  });

  it('lists every command in its help, but not the hidden debug command', async function () {
    const result = await ws.cli('--help');
    expect(result.code).to.equal(0);
    for (const command of ['run', 'queue', 'jobs', 'show', 'logs', 'wait', 'cancel', 'start', 'stop', 'restart', 'status', 'hosts', 'instances', 'completion']) {
      expect(result.stdout).to.match(new RegExp(`^ {2}${command}\\b`, 'm'));
    }
    expect(result.stdout).not.to.match(/^ {2}debug\b/m);
    expect(result.stdout).to.contain('Exit codes: 0 ok, 1 a job did not succeed, 2 bad input');
  });

  it("refuses unknown and misplaced options with exit 2 and the command's usage, and queues nothing", async function () {
    const before = await jobCount();
    const refusals: [string[], RegExp, RegExp][] = [
      [['queue', job, '--follow'], /unknown option '--follow'/, /Usage: jobmanager queue \[options\] <files\.\.\.>/],
      [['jobs', '--follow'], /unknown option '--follow'/, /Usage: jobmanager jobs \[options\]/],
      [['show', '1', '--wait'], /unknown option '--wait'/, /Usage: jobmanager show/],
      [['jobs', '--all', '--limit', '3'], /'--all' cannot be used with option '--limit/, /Usage: jobmanager jobs/],
      [['jobs', '--state', 'done'], /Allowed choices are queued, granted, running/, /Usage: jobmanager jobs/],
      [['show'], /missing required argument 'id'/, /Usage: jobmanager show/],
      [['show', '1', '2'], /too many arguments/, /Usage: jobmanager show/],
      [['queue', '--bogus', job], /unknown option '--bogus'/, /Usage: jobmanager queue/],
      [['frobnicate'], /unknown command 'frobnicate'/, /jobmanager --help/],
      [[], /Usage: jobmanager \[options\] \[command\]/, /Commands:/],
    ];
    for (const [args, why, usage] of refusals) {
      const result = await ws.cli(...args);
      expect(result.code, `jobmanager ${args.join(' ')}: ${result.stderr}`).to.equal(2);
      expect(result.stderr, args.join(' ')).to.match(why).and.to.match(usage);
    }
    expect(await jobCount(), 'nothing was queued').to.equal(before);
  });

  it('takes --config and --json before or after the command', async function () {
    for (const args of [['--json', 'jobs'], ['jobs', '--json'], ['jobs', '--all', '--json']]) {
      const result = await ws.cli(...args);
      expect(result.code, args.join(' ')).to.equal(0);
      expect(JSON.parse(result.stdout), args.join(' ')).to.have.property('jobs');
    }
    const bad = ws.write('bad-config.yaml', 'LocalMaxJobz: 3\n');
    for (const args of [['--config', bad, 'jobs'], ['jobs', '--config', bad]]) {
      const result = await ws.cli(...args);
      expect(result.code, args.join(' ')).to.equal(2);
      expect(result.stderr, 'the file given is the one read').to.contain(bad).and.to.contain('LocalMaxJobz');
    }
  });

  it('prints its version', async function () {
    const result = await ws.cli('--version');
    expect(result.code).to.equal(0);
    expect(result.stdout.trim()).to.equal(JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).version);
  });

  it('stops printing quietly when its reader goes away (`| head`), with its own exit code', function () {
    // A reader that closes at once: every write of the help text meets a closed pipe.
    const result = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI_MAIN}" help jobs | true`], { encoding: 'utf8' });
    expect(result.stderr, 'no EPIPE stack').to.equal('');
    expect(result.status).to.equal(0);
  });

  it('completes commands, options, option values and job files in bash', async function () {
    const script = await ws.cli('completion', 'bash');
    expect(script.code).to.equal(0);
    const file = ws.write('completion.bash', script.stdout);
    const complete = (...words: string[]): string[] => {
      const array = words.map((w) => `'${w}'`).join(' ');
      const result = spawnSync('bash', ['--norc', '--noprofile', '-c', `source ${file}; COMP_WORDS=(jobmanager ${array}); COMP_CWORD=${words.length}; _jobmanager; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: ws.dir, encoding: 'utf8' });
      expect(result.status, result.stderr).to.equal(0);
      return result.stdout.split('\n').filter(Boolean);
    };
    expect(complete('qu')).to.deep.equal(['queue']);
    expect(complete(''), 'no hidden command').to.include.members(['run', 'queue', 'logs', 'completion']).and.not.to.include('debug');
    expect(complete('logs', '1', '--f')).to.deep.equal(['--follow']);
    expect(complete('jobs', '--')).to.include.members(['--state', '--limit', '--all', '--json', '--config']).and.not.to.include('--follow');
    expect(complete('jobs', '--state', 'f')).to.deep.equal(['failed']);
    expect(complete('--json', 'queue', 'hel')).to.deep.equal(['hello.yaml']);
    expect(complete('--config', 'bad-c')).to.deep.equal(['bad-config.yaml']);
    expect(complete('help', 'ca')).to.deep.equal(['cancel']);
  });

  it('shows progress as a plain line with counts by state and an ETA when stderr is not a terminal', async function () {
    const result = await ws.cli('queue', '--wait', job);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.match(/^1\/1 done · 1 succeeded · ETA 0s$/m);
    expect(result.stderr, 'no terminal control sequences').not.to.match(/\x1b/);
    expect(result.stdout, 'stdout holds only the result table').to.match(/^ID\s+NAME\s+TYPE\s+STATE/);
  });

  it('draws a progress bar on a terminal and clears it when the jobs have ended', async function () {
    const slow = ws.write('slow.yaml', 'Name: slow\nOrder: [{Run: "sleep 1"}]\n');
    // script(1) gives the command a real pseudo-terminal, as a user's shell would.
    const command = [process.execPath, CLI_MAIN, 'queue', '--wait', slow].map((a) => `'${a}'`).join(' ');
    const result = spawnSync('script', ['-qec', command, '/dev/null'], { env: ws.env(), cwd: ws.dir, encoding: 'utf8' });
    expect(result.status, result.stdout).to.equal(0);
    expect(result.stdout).to.match(/[█░]{24} 0\/1 done · .*queued.* · ETA -/);
    expect(result.stdout).to.match(/\r\x1b\[\d*K|\x1b\[\d*G|\x1b\[2K/, 'the bar is redrawn in place and cleared');
    expect(result.stdout).to.match(/slow\s+Local\s+succeeded/);
  });
});

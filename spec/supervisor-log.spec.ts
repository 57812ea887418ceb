import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workspace } from './support/workspace.js';
import { CLI_MAIN } from './support/cli.js';
import { parseLogLines, supervisorLog } from './support/supervisor-log.js';
import { tempDir, removeDir } from './support/temp.js';
import { waitFor } from './support/wait-for.js';
import { FileLogger } from '../lib/util/log.js';
import { lockOwner } from '../lib/util/state-lock.js';

// supervisor.log is JSON lines (pino) that a log tool can read: time, level, actor, msg, and the
// job a line is about; the old tool's names stay in the messages; no secret in any field; and a
// person running the supervisor in the foreground on a terminal reads pretty lines.

/** Who writes: the three actors, the supervisor, and its web page. */
const WRITERS = ['manager', 'starter', 'fetcher', 'supervisor', 'web'];

describe('the supervisor log', function () {
  let ws: Workspace;

  before(async function () {
    ws = await Workspace.create();
    await ws.startSupervisor();
  });

  after(async function () {
    await ws?.dispose();
  });

  it('is JSON lines with time, level, actor and msg, the old names, and the job a line is about', async function () {
    const ok = ws.write('ok.yaml', 'Name: ok\nOrder: [{Run: "true"}]\n');
    const fails = ws.write('fails.yaml', 'Name: fails\nOrder: [{Run: "exit 3"}]\n');
    const queued = await ws.cli('queue', ok, fails);
    const [okId, failedId] = Workspace.ids(queued.stdout);
    const waited = await ws.cli('wait', okId, failedId, '--json');
    expect(waited.code, 'one job fails on purpose').to.equal(1);
    const lines = supervisorLog(ws.stateDir);
    expect(lines.length).to.be.greaterThan(5);
    for (const line of lines) {
      expect(Number.isNaN(Date.parse(line.time)), `time of ${JSON.stringify(line)}`).to.equal(false);
      expect(line.level).to.be.oneOf(['debug', 'info', 'warn', 'error']);
      expect(line.actor).to.be.oneOf(WRITERS);
      expect(line.msg).to.be.a('string');
    }
    expect([...new Set(lines.map((l) => l.actor))], 'every actor and the supervisor write to it').to.include.members(['manager', 'starter', 'fetcher', 'supervisor']);
    const of = (actor: string) => lines.filter((l) => l.actor === actor).map((l) => l.msg);
    expect(of('manager').some((m) => m.startsWith('JobManager: '))).to.equal(true);
    expect(of('starter').some((m) => m.startsWith('JobStarter: '))).to.equal(true);
    expect(of('fetcher').some((m) => m.startsWith('ResultFetcher: '))).to.equal(true);
    const aboutFailed = lines.filter((l) => l.job === failedId);
    expect(aboutFailed.map((l) => l.actor), `lines about job ${failedId}`).to.include('fetcher');
    expect(aboutFailed.every((l) => new RegExp(`\\bjob ${failedId}\\b`).test(l.msg))).to.equal(true);
  });

  it('keeps secrets out of the message and of every field', function () {
    const dir = tempDir('jm-log-');
    try {
      const file = join(dir, 'supervisor.log');
      const log = new FileLogger(file, 'debug', 'supervisor', false);
      log.info('connecting to redis://:hunter2-password@10.1.2.3:6379/0', { url: 'rediss://user:hunter2-password@db:6380/', job: '7' });
      log.warn('AWS_SECRET_ACCESS_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCD in the environment');
      log.close();
      log.error('after close: dropped, never a crash');
      const text = readFileSync(file, 'utf8');
      expect(text).not.to.contain('hunter2').and.not.to.contain('abcdefghijklmnopqrstuvwxyz0123456789ABCD');
      const [first, second] = parseLogLines(text);
      expect(first).to.include({ level: 'info', actor: 'supervisor', job: '7', url: 'rediss://user:***@db:6380/' });
      expect(first.msg).to.equal('connecting to redis://:***@10.1.2.3:6379/0');
      expect(second.msg).to.equal('AWS_SECRET_ACCESS_KEY=*** in the environment');
    } finally {
      removeDir(dir);
    }
  });

  it('is pretty on stderr when the supervisor runs in the foreground on a terminal', async function () {
    const other = await Workspace.create();
    try {
      // script(1) runs `jobmanager start` on a pseudo-terminal, as a user's shell would.
      const command = `'${process.execPath}' '${CLI_MAIN}' start`;
      const child = spawn('script', ['-qec', command, '/dev/null'], { env: other.env(), stdio: ['pipe', 'pipe', 'inherit'] });
      let screen = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await waitFor('the manager to say it watches Job_Queue', () => /JobManager: watching Job_Queue/.test(screen), 20_000);
      process.kill(lockOwner(other.stateDir)!, 'SIGTERM');
      await exited;
      const plain = screen.replace(/\x1b\[[0-9;]*m/g, '');
      expect(plain).to.match(/\d\d:\d\d:\d\d\.\d{3}\]? INFO.*manager +JobManager: watching Job_Queue/);
      expect(plain, 'no JSON on the terminal').not.to.match(/^\{"level"/m);
      expect(screen, 'in colour').to.match(/\x1b\[3\dm/);
      expect(supervisorLog(other.stateDir).some((l) => l.msg.startsWith('JobManager: watching Job_Queue')), 'the file is JSON all the same').to.equal(true);
    } finally {
      await other.dispose();
    }
  });
});

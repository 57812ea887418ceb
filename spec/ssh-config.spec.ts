import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadConfig } from '../lib/config/config.js';
import type { JobView } from '../lib/cli/views.js';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { SshHost, loopbackAddress } from './support/sshd.js';
import { SshAgent } from './support/ssh-agent.js';
import { removeDir, tempDir } from './support/temp.js';

// SSH the way OpenSSH users have it (issue 11.5): host aliases, users, ports, keys and jump hosts
// from an ssh client config (SshConfig), the ssh-agent's keys tried beside Key, and keys
// protected by a passphrase used through the agent. A real ssh-agent (started and stopped by
// pid), a real jump host and a real target host, each an OpenSSH sshd.

const PASSPHRASE = 'correct horse battery staple';

function keygen(file: string, passphrase = ''): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', basename(file), '-f', file]);
  return file;
}

describe('SshConfig: how ~/.ssh/config and the config\'s Hosts combine', function () {
  let dir: string;

  before(function () {
    dir = tempDir('jm-sshcfg-');
    writeFileSync(join(dir, 'ssh_config'), [
      'Host gpu',
      '  HostName 10.1.2.3',
      '  User alice',
      '  Port 2201',
      `  IdentityFile ${join(dir, 'gpu_key')}`,
      '  ProxyJump bob@gate:2022,inner',
      'Host inner',
      '  HostName 10.1.2.1',
      'Host *.lab',
      '  HostName %h.example.org',
      '  User labuser',
      'Host *',
      '  User everyone',
    ].join('\n'));
  });

  after(function () {
    removeDir(dir);
  });

  function hostsOf(config: Record<string, unknown>) {
    const file = join(dir, `jobmanager-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, JSON.stringify({ SshConfig: join(dir, 'ssh_config'), ...config }));
    return loadConfig({ file, env: {} }).hosts;
  }

  it('takes HostName, User, Port, IdentityFile and ProxyJump for an alias; the entry\'s own keys win', function () {
    const [gpu, mine] = hostsOf({ Hosts: [{ Name: 'gpu' }, { Name: 'mine', Hostname: 'gpu', Port: 22, Username: 'me', Key: join(dir, 'my_key') }] });
    expect(gpu).to.include({ name: 'gpu', alias: 'gpu', hostname: '10.1.2.3', port: 2201, username: 'alice', key: null });
    expect(gpu.identityFiles).to.deep.equal([join(dir, 'gpu_key')]);
    // ProxyJump bob@gate:2022,inner: through gate (bob, port 2022), then inner (10.1.2.1), then gpu.
    expect(gpu.jump).to.deep.include({ hostname: '10.1.2.1', port: 22, username: 'everyone' });
    expect(gpu.jump!.jump).to.deep.include({ hostname: 'gate', port: 2022, username: 'bob', jump: null });
    expect(mine).to.include({ name: 'mine', hostname: '10.1.2.3', port: 22, username: 'me', key: join(dir, 'my_key') });
    expect(mine.identityFiles, 'the alias\'s IdentityFile is still tried, after Key').to.deep.equal([join(dir, 'gpu_key')]);
  });

  it('matches patterns and expands %h, as ssh does; SshConfig: null reads none', function () {
    const [node] = hostsOf({ Hosts: [{ Name: 'node7', Hostname: 'node7.lab' }] });
    expect(node).to.include({ hostname: 'node7.lab.example.org', username: 'labuser', port: 22 });
    const [plain] = hostsOf({ SshConfig: null, Hosts: [{ Name: 'gpu', Hostname: 'gpu', Username: 'u' }] });
    expect(plain).to.include({ hostname: 'gpu', port: 22, username: 'u' });
    expect(plain.jump).to.equal(null);
  });

  it('refuses an entry with only a Name that the ssh config does not give a HostName (a typo, not a DNS name)', function () {
    expect(() => hostsOf({ Hosts: [{ Name: 'gpv' }] })).to.throw(/Hosts\.0\.Hostname.*is missing: the address or DNS name of the host \(or a Host gpv block with a HostName in .*ssh_config\)/);
    expect(() => hostsOf({ SshConfig: null, Hosts: [{ Name: 'gpu' }] })).to.throw(/Hosts\.0\.Hostname.*is missing/);
  });
});

(SshHost.available() ? describe : describe.skip)('SSH as OpenSSH users have it: aliases, the agent, ProxyJump', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let target: SshHost;
  let jump: SshHost;
  let agent: SshAgent;
  let knownHosts: string;
  let config: Record<string, unknown>;

  /** Starts the workspace's supervisor with (or without) the agent in its environment. */
  async function startSupervisor(withAgent: boolean): Promise<void> {
    const saved = process.env.SSH_AUTH_SOCK;
    if (withAgent) process.env.SSH_AUTH_SOCK = agent.socket;
    else delete process.env.SSH_AUTH_SOCK;
    try {
      await ws.startSupervisor();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  }

  async function runJob(name: string, hostname: string): Promise<JobView & { runs: { reason: string }[] }> {
    const file = ws.write(`${name}.yaml`, ['ClassType: Remote', `Hostname: ${hostname}`, 'Order:', '  - {Run: "echo $(whoami) on $SSH_CONNECTION", Outputs: [who]}'].join('\n'));
    const queued = await ws.cli('queue', file);
    expect(queued.code, queued.stderr).to.equal(0);
    const [id] = Workspace.ids(queued.stdout);
    await ws.cli('wait', id, '--timeout', '60s');
    return JSON.parse((await ws.cli('show', id, '--json')).stdout);
  }

  before(async function () {
    [target, jump] = await Promise.all([SshHost.start({ index: 3 }), SshHost.start({ index: 4 })]);
    agent = await SshAgent.start();
    ws = await Workspace.create();
    const locked = keygen(join(ws.dir, 'locked_key'), PASSPHRASE);
    const stranger = keygen(join(ws.dir, 'stranger_key'));
    appendFileSync(join(target.dir, 'authorized_keys'), readFileSync(`${locked}.pub`));
    agent.add(locked, PASSPHRASE);
    knownHosts = ws.write('known_hosts', `${target.knownHostsLine}\n${jump.knownHostsLine}\n`);
    const host = (alias: string, key: string, via: string | null) => [
      `Host ${alias}`, `  HostName ${target.address}`, `  Port ${target.port}`, `  User ${target.username}`, `  IdentityFile ${key}`, ...(via ? [`  ProxyJump ${via}`] : []),
    ];
    const sshConfig = ws.write('ssh_config', [
      ...host('gpu', locked, null),
      ...host('behind', target.clientKey, 'hop'),
      ...host('behind-again', target.clientKey, 'hop'),
      'Host hop',
      `  HostName ${jump.address}`,
      `  Port ${jump.port}`,
      `  User ${jump.username}`,
      `  IdentityFile ${jump.clientKey}`,
    ].join('\n') + '\n');
    config = {
      ...FAST_CONFIG,
      Deployment: `t${basename(ws.dir).slice(-6)}`,
      KnownHosts: knownHosts,
      SshConfig: sshConfig,
      Web: { Listen: null },
      // gpu: all from ssh_config; keyed: Key is a key the host refuses, the agent has one it takes.
      Hosts: [{ Name: 'gpu' }, { Name: 'keyed', Hostname: 'gpu', Key: stranger }],
    };
    ws.writeConfig(config);
    await startSupervisor(true);
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    await agent?.stop();
    await Promise.all([target?.stop(), jump?.stop()]);
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('reaches a Hosts entry named by its alias, with a passphrase-protected IdentityFile held by the agent', async function () {
    const job = await runJob('alias', 'gpu');
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect((job.result as { who: string }).who).to.match(new RegExp(`^${target.username} on \\S+ \\d+ ${target.address.replace(/\./g, '\\.')} ${target.port}$`));
  });

  it('tries the agent\'s keys beside Key', async function () {
    const job = await runJob('keyed', 'keyed');
    expect(job.state, job.reason ?? '').to.equal('succeeded');
  });

  it('reaches an alias a job file names through its ProxyJump host, checking both host keys', async function () {
    const job = await runJob('jumped', 'behind');
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect((job.result as { who: string }).who).to.match(new RegExp(`^${target.username} on `));
    // That the connection goes through the jump host shows in the next test: without the jump
    // host's key on file, the target is not reached.
  });

  it('refuses a jump host whose key is not in KnownHosts, naming it', async function () {
    writeFileSync(knownHosts, `${target.knownHostsLine}\n`);
    const job = await runJob('unknown-jump', 'behind-again');
    expect(job.state).to.equal('failed');
    expect(job.reason).to.contain(`[${loopbackAddress(4)}]:${jump.port} (host behind-again (its jump host ${jump.address})) is not in ${knownHosts}`);
    writeFileSync(knownHosts, `${target.knownHostsLine}\n${jump.knownHostsLine}\n`);
  });

  it('without an agent, a passphrase-protected key is a config error that says what to do', async function () {
    await ws.supervisor!.stop();
    await startSupervisor(false);
    const job = await runJob('no-agent', 'gpu');
    expect(job.state).to.equal('failed');
    expect(job.reason).to.contain('locked_key is protected by a passphrase and no ssh-agent is running');
    expect(job.reason).to.contain('ssh-add');
  });
});

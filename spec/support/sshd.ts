import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';

// A real OpenSSH sshd for specs, on its own loopback address (127.0.0.N), with a host key and a
// client key made for it in a temporary directory. Each "host" logs in as a user of its own
// (jmhostN, created on first use, shell /bin/sh) so that hosts do not share a home directory and
// no heavy rc file runs on every command (see shared/TESTING.md). Stopped by pid.

export interface SshdOptions {
  /** The N of 127.0.0.N (2 and up). */
  index: number;
  maxSessions?: number;
}

const SSHD = '/usr/sbin/sshd';

export class SshHost {
  private child: ChildProcess | null = null;

  private constructor(
    readonly index: number,
    readonly dir: string,
    readonly port: number,
    readonly username: string,
    private readonly options: SshdOptions,
  ) {}

  get address(): string {
    return `127.0.0.${this.index}`;
  }

  get name(): string {
    return `host${this.index}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get clientKey(): string {
    return join(this.dir, 'client_key');
  }

  get home(): string {
    return `/home/${this.username}`;
  }

  /** The known_hosts line for this host's key. */
  get knownHostsLine(): string {
    const [type, key] = readFileSync(join(this.dir, 'host_key.pub'), 'utf8').trim().split(/\s+/);
    return `[${this.address}]:${this.port} ${type} ${key}`;
  }

  /** The config's Hosts entry for it. */
  hostEntry(slots = 4): Record<string, unknown> {
    return { Name: this.name, Hostname: this.address, Port: this.port, Username: this.username, Key: this.clientKey, Slots: slots };
  }

  static available(): boolean {
    return spawnSync(SSHD, ['-V'], { stdio: 'ignore' }).error === undefined && process.getuid?.() === 0;
  }

  static async start(options: SshdOptions): Promise<SshHost> {
    const username = ensureUser(`jmhost${options.index}`);
    const dir = tempDir('jm-sshd-');
    chmodSync(dir, 0o755);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
    chmodSync(join(dir, 'authorized_keys'), 0o644);
    const host = new SshHost(options.index, dir, await freePort(`127.0.0.${options.index}`), username, options);
    host.writeConfig();
    await host.launch();
    return host;
  }

  private writeConfig(): void {
    writeFileSync(join(this.dir, 'sshd_config'), [
      `ListenAddress ${this.address}:${this.port}`,
      `HostKey ${join(this.dir, 'host_key')}`,
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${this.username}`,
      `MaxSessions ${this.options.maxSessions ?? 10}`,
      'MaxStartups 100',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      'LogLevel ERROR',
    ].join('\n') + '\n');
  }

  private async launch(): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true });
    this.child = spawn(SSHD, ['-D', '-e', '-f', join(this.dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'ignore'] });
    await waitFor(`sshd on ${this.address}:${this.port}`, () => banner(this.address, this.port));
  }

  /** kill -9 of the listening sshd (connections it already forked stay, as on a real host). */
  async kill9(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child!.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Kill every sshd process of this host, the per-connection ones too: the host is gone. */
  async killAll(): Promise<void> {
    spawnSync('pkill', ['-9', '-f', join(this.dir, 'sshd_config')]);
    spawnSync('pkill', ['-9', '-u', this.username, '-f', 'sshd:']);
    await this.kill9();
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.launch();
  }

  /** Replace the host key (a man in the middle, as far as a client can tell). */
  async changeHostKey(): Promise<void> {
    removeDir(join(this.dir, 'host_key'));
    removeDir(join(this.dir, 'host_key.pub'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(this.dir, 'host_key')]);
    await this.restart();
  }

  /** Run a command as the host's user (for checks a spec makes on "the host"). */
  run(command: string): string {
    return execFileSync('su', ['-s', '/bin/sh', this.username, '-c', command], { encoding: 'utf8' });
  }

  async stop(): Promise<void> {
    await this.killAll();
    spawnSync('pkill', ['-9', '-u', this.username]);
    removeDir(this.dir);
  }
}

function ensureUser(name: string): string {
  if (spawnSync('id', [name], { stdio: 'ignore' }).status !== 0) {
    // Password '*': no password login, but not "locked" (sshd without PAM refuses locked accounts).
    execFileSync('useradd', ['-m', '-s', '/bin/sh', '-p', '*', name]);
  }
  return name;
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** True once something on address:port speaks SSH. */
function banner(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.setTimeout(1000);
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('SSH-'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

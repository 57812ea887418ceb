import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { commandName, killProcessTree, killTree } from './processes.js';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';
import { freePort } from './free-port.js';

// A real OpenSSH sshd for specs, on its own loopback address (127.K.0.N), with a host key and a
// client key made for it in a temporary directory. Each "host" logs in as a user of its own
// (jmhostN, created on first use, shell /bin/sh) so that hosts do not share a home directory and
// no heavy rc file runs on every command (root's ~/.bashrc on this machine costs ~100 ms an SSH
// command). Stopped by pid.
//
// The loopback EC2 server (ec2-server.ts) starts its instances through the same class with a
// given port, login user and authorized key: those hosts share one user, so they are stopped by
// their own process tree plus every process carrying their SetEnv marker, never by user name.

export type HostKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface SshdOptions {
  /** The N of 127.K.0.N (2 and up; K: LOOPBACK_NET). */
  index: number;
  maxSessions?: number;
  /** Listen on this port. @defaultValue a free port on 127.0.0.N */
  port?: number;
  /**
   * Log in as this user (created if missing). It may be shared with other hosts.
   * @defaultValue jmhost<index>, a user of this host's own
   */
  username?: string;
  /**
   * Authorize this OpenSSH public key line instead of making a client key; `clientKey` then
   * names no file. @defaultValue a fresh ed25519 client key in the host's directory
   */
  authorizedKey?: string;
  /** Host key types; the first is the one `knownHostsLine` gives. @defaultValue ['ed25519'] */
  hostKeyTypes?: HostKeyType[];
  /** Comment on the host keys (cloud-init prints `root@ip-…`). @defaultValue ssh-keygen's user@host */
  hostKeyComment?: string;
  /**
   * Offer the SFTP subsystem. false: no `Subsystem sftp` line, as on hosts that offer only a
   * shell (Dropbear without sftp-server, hardened configurations). @defaultValue true
   */
  sftp?: boolean;
  /**
   * Python on the PATH of its sessions. false: a PATH of its own, with every command of the usual
   * one but python*, as on hosts without Python (JobManager then starts jobs with sh).
   * @defaultValue true
   */
  python?: boolean;
  /** More sshd_config lines (e.g. `AllowTcpForwarding no`). */
  extraConfig?: string[];
}

const SSHD = '/usr/sbin/sshd';

/**
 * The loopback network of this test run: JM_SPEC_LOOPBACK_NET=K puts every spec host on
 * 127.K.0.N (and gives it its own login user), so that test runs in several checkouts at once
 * never meet. All of 127.0.0.0/8 is loopback on Linux. @defaultValue 0 (127.0.0.N)
 */
export const LOOPBACK_NET = (() => {
  const net = Number(process.env.JM_SPEC_LOOPBACK_NET ?? 0);
  if (!Number.isInteger(net) || net < 0 || net > 255) throw new Error(`JM_SPEC_LOOPBACK_NET=${process.env.JM_SPEC_LOOPBACK_NET}: give a whole number from 0 to 255`);
  return net;
})();

/** The address of spec host N: 127.<LOOPBACK_NET>.0.N. */
export function loopbackAddress(index: number): string {
  return `127.${LOOPBACK_NET}.0.${index}`;
}
/** Set by sshd in every session of a host (SetEnv), so detached processes can be found by pid. */
const MARKER = 'JM_SSHD_DIR';

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
    return loopbackAddress(this.index);
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

  /** The known_hosts line for this host's (first) key. */
  get knownHostsLine(): string {
    const [type, key] = readFileSync(join(this.dir, 'host_key.pub'), 'utf8').trim().split(/\s+/);
    return `[${this.address}]:${this.port} ${type} ${key}`;
  }

  /** Every host public key as an OpenSSH line (`type base64 comment`), first key first. */
  get hostPublicKeys(): string[] {
    return this.hostKeyFiles().map((file) => readFileSync(`${file}.pub`, 'utf8').trim());
  }

  /** The config's Hosts entry for it. */
  hostEntry(slots = 4): Record<string, unknown> {
    return { Name: this.name, Hostname: this.address, Port: this.port, Username: this.username, Key: this.clientKey, Slots: slots };
  }

  static available(): boolean {
    return spawnSync(SSHD, ['-V'], { stdio: 'ignore' }).error === undefined && process.getuid?.() === 0;
  }

  static async start(options: SshdOptions): Promise<SshHost> {
    const username = ensureUser(options.username ?? `jmhost${LOOPBACK_NET ? `${LOOPBACK_NET}x` : ''}${options.index}`);
    const dir = tempDir('jm-sshd-');
    chmodSync(dir, 0o755);
    if (options.authorizedKey === undefined) {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
      writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
    } else {
      writeFileSync(join(dir, 'authorized_keys'), `${options.authorizedKey.trim()}\n`);
    }
    chmodSync(join(dir, 'authorized_keys'), 0o644);
    const port = options.port ?? (await freePort(loopbackAddress(options.index)));
    const host = new SshHost(options.index, dir, port, username, options);
    host.makeHostKeys();
    host.writeConfig();
    await host.launch();
    return host;
  }

  private hostKeyFiles(): string[] {
    const types = this.options.hostKeyTypes ?? ['ed25519'];
    return types.map((type, i) => join(this.dir, i === 0 ? 'host_key' : `host_key_${type}`));
  }

  private makeHostKeys(): void {
    const types = this.options.hostKeyTypes ?? ['ed25519'];
    const comment = this.options.hostKeyComment === undefined ? [] : ['-C', this.options.hostKeyComment];
    this.hostKeyFiles().forEach((file, i) => {
      execFileSync('ssh-keygen', ['-q', '-t', types[i], '-N', '', ...comment, '-f', file]);
    });
  }

  /** A directory of links to every command of the usual PATH but Python's. */
  private pathWithoutPython(): string {
    const bin = join(this.dir, 'bin');
    mkdirSync(bin, { recursive: true });
    for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].filter((d) => existsSync(d))) {
      for (const name of readdirSync(dir)) {
        if (!name.startsWith('python') && !existsSync(join(bin, name))) symlinkSync(join(dir, name), join(bin, name));
      }
    }
    return bin;
  }

  private writeConfig(): void {
    writeFileSync(join(this.dir, 'sshd_config'), [
      `ListenAddress ${this.address}:${this.port}`,
      ...this.hostKeyFiles().map((file) => `HostKey ${file}`),
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      `SetEnv ${MARKER}=${this.dir}${this.options.python === false ? ` PATH=${this.pathWithoutPython()}` : ''}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${this.username}`,
      `MaxSessions ${this.options.maxSessions ?? 10}`,
      'MaxStartups 100',
      ...(this.options.sftp === false ? [] : ['Subsystem sftp /usr/lib/openssh/sftp-server']),
      ...(this.options.extraConfig ?? []),
      'LogLevel ERROR',
    ].join('\n') + '\n');
  }

  private async launch(): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true });
    const child = spawn(SSHD, ['-D', '-e', '-f', join(this.dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    // Kept only to explain an sshd that exits at once (port taken, bad config) instead of
    // waiting out the deadline.
    let stderr = '';
    child.stderr!.on('data', (data: Buffer) => {
      if (stderr.length < 4096) stderr += data.toString();
    });
    // The per-connection sshd processes inherit this pipe and may outlive the listener (kill9
    // leaves them running, as on a real host), so the pipe's end is no event the spec waits for;
    // the child process itself stays referenced until it exits, so a host never stopped still
    // keeps mocha from exiting.
    (child.stderr as Socket).unref();
    await waitFor(`sshd on ${this.address}:${this.port}`, () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`sshd on ${this.address}:${this.port} exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
      }
      return sshBanner(this.address, this.port);
    });
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
    if (this.options.username === undefined) {
      // The listener's tree first: the connections it is forking at this moment included. Its
      // sshd processes only, as `pkill -9 sshd` would: what runs in the sessions (the launch
      // shell, the spawner's jobs, tail) sees its connection end, as it would on a real host.
      if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) killTree(this.child.pid, (pid) => commandName(pid).startsWith('sshd'));
      spawnSync('pkill', ['-9', '-f', join(this.dir, 'sshd_config')]);
      spawnSync('pkill', ['-9', '-u', this.username, '-f', 'sshd:']);
    } else {
      // Before the listener dies: its children would be reparented and lost from its tree.
      killProcessTree(this.child?.pid, `${MARKER}=${this.dir}`);
    }
    await this.kill9();
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.launch();
  }

  /** Replace the host keys (a man in the middle, as far as a client can tell). */
  async changeHostKey(): Promise<void> {
    for (const file of this.hostKeyFiles()) {
      removeDir(file);
      removeDir(`${file}.pub`);
    }
    this.makeHostKeys();
    await this.restart();
  }

  /** Run a command as the host's user (for checks a spec makes on "the host"). */
  run(command: string): string {
    return execFileSync('su', ['-s', '/bin/sh', this.username, '-c', command], { encoding: 'utf8' });
  }

  /**
   * Everything of this host ends: its sshd, its sessions and whatever they left running. A host
   * with a user of its own ends every process of that user; a host sharing its user ends only
   * its own process tree and the processes carrying its SetEnv marker.
   */
  async stop(): Promise<void> {
    await this.killAll();
    if (this.options.username === undefined) spawnSync('pkill', ['-9', '-u', this.username]);
    else killProcessTree(undefined, `${MARKER}=${this.dir}`);
    removeDir(this.dir);
  }
}

function ensureUser(name: string): string {
  if (spawnSync('id', [name], { stdio: 'ignore' }).status !== 0) {
    // Password '*': no password login, but not "locked" (sshd without PAM refuses locked accounts).
    const made = spawnSync('useradd', ['-m', '-s', '/bin/sh', '-p', '*', name], { encoding: 'utf8' });
    // Another process may have made it in the meantime: only a user still missing is an error.
    if (made.status !== 0 && spawnSync('id', [name], { stdio: 'ignore' }).status !== 0) {
      throw new Error(`useradd ${name} failed: ${made.stderr}`);
    }
  }
  return name;
}

/** A user for SSH logins (shell /bin/sh, no password, not locked), made if missing. */
export function ensureLoginUser(name: string): string {
  return ensureUser(name);
}

/** True once something on address:port speaks SSH. */
export function sshBanner(address: string, port: number): Promise<boolean> {
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

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';

// A real OpenSSH ssh-agent for specs: in the foreground (-D) on a socket in a temporary
// directory, stopped by its pid. Keys are added with the real ssh-add; a passphrase is given
// through SSH_ASKPASS (a script that prints it), as a desktop session would.

export class SshAgent {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly socket: string,
  ) {}

  static async start(): Promise<SshAgent> {
    const dir = tempDir('jm-agent-');
    const socket = join(dir, 'agent.sock');
    const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const agent = new SshAgent(child, dir, socket);
    await waitFor('ssh-agent socket', () => {
      if (child.exitCode !== null) throw new Error(`ssh-agent exited (${child.exitCode})`);
      return existsSync(socket);
    });
    return agent;
  }

  /** ssh-add KEY, answering its passphrase question with `passphrase`. */
  add(keyFile: string, passphrase = ''): void {
    const askpass = join(this.dir, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${passphrase.replace(/'/g, `'\\''`)}'\n`, { mode: 0o700 });
    execFileSync('ssh-add', ['-q', keyFile], {
      env: { PATH: process.env.PATH, SSH_AUTH_SOCK: this.socket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: 'none' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    removeDir(this.dir);
  }
}

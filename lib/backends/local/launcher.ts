import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LauncherError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { jobEnvironment } from '../job-env.js';
import { launcherEnvironment } from './launcher-env.js';

// The supervisor's side of the local launcher (launcher-main.ts): one long-lived process per
// starter incarnation ("epoch"), fed launch requests on stdin. It runs in its own session, so it
// and the jobs it starts survive the supervisor; closing its stdin tells it to start nothing more.

const LAUNCHER_MAIN = fileURLToPath(new URL('./launcher-main.js', import.meta.url));

export class Launcher {
  private readonly child: ChildProcess;
  private exited = false;
  private closed = false;
  private pending: string[] = [];

  constructor(
    readonly epoch: string,
    readonly runLog: string,
    private readonly log: Logger,
    onExit: (code: number | null) => void,
  ) {
    // Its environment is the jobs' one (no supervisor secrets), with node's own variables set aside.
    // --single-threaded: no V8 helper threads. Where the launcher spawns with node's own spawn
    // (native/spawn.c not built), each spawn is a fork of it, and a fork of a process whose
    // threads run on other cores costs TLB shootdowns there (dear on this kind of virtual machine,
    // where page faults and flushes are most of a spawn's cost): 2,000 local jobs cost the two
    // launchers 8.0-8.2 s of CPU with it, 9.1-9.6 s without. posix_spawn copies nothing.
    this.child = spawn(process.execPath, ['--single-threaded', LAUNCHER_MAIN, runLog], { detached: true, stdio: ['pipe', 'ignore', 'pipe'], env: launcherEnvironment(jobEnvironment()) });
    this.child.unref();
    this.child.stderr?.setEncoding('utf8').on('data', (text: string) => log.warn(`launcher ${epoch}: ${text.trim()}`));
    this.child.stdin?.on('error', () => {});
    this.child.on('exit', (code) => {
      this.exited = true;
      if (!this.closed) onExit(code);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Ask the launcher to start `script` with sh in `dir`, its own process group (at flush()). */
  launch(runId: string, dir: string, script: string): void {
    if (this.exited || this.closed) throw new LauncherError(`launcher ${this.epoch} is not running`);
    if (runId.includes('\0') || dir.includes('\0') || script.includes('\0')) throw new LauncherError('a NUL character cannot be passed to the launcher');
    this.pending.push(`${runId}\0${dir}\0${script}\0`);
  }

  /** Sends the launches asked for since the last flush, in one write. */
  flush(): void {
    if (this.pending.length === 0 || this.exited || this.closed) return;
    this.child.stdin!.write(this.pending.join(''));
    this.pending = [];
  }

  /** Stop accepting launches. The launcher keeps reaping its running jobs, then exits. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.child.stdin?.end();
    this.child.stderr?.destroy();
  }
}

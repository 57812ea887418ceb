import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROJECT_ROOT } from '../../util/paths.js';
import { LauncherError, MissingProgramError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { jobEnvironment } from '../job-env.js';
import { launcherEnvironment } from './launcher-env.js';

// The supervisor's side of the local launcher (launcher-main.ts): one long-lived process per
// starter incarnation ("epoch"), fed launch requests on stdin. It runs in its own session, so it
// and the jobs it starts survive the supervisor; closing its stdin tells it to start nothing more.
//
// JM_LAUNCHER=perl starts the Perl launcher (launcher.pl) instead, which speaks the same protocol
// and writes the same run log: kept only to measure one against the other (bench/launcher.ts).

const NODE_LAUNCHER = fileURLToPath(new URL('./launcher-main.js', import.meta.url));
const PERL_LAUNCHER = join(PROJECT_ROOT, 'lib', 'backends', 'local', 'launcher.pl');

export type LauncherKind = 'node' | 'perl';

/** Which launcher program to start: JM_LAUNCHER (node or perl). @defaultValue node */
export function launcherKind(env: NodeJS.ProcessEnv = process.env): LauncherKind {
  const kind = env.JM_LAUNCHER ?? 'node';
  if (kind !== 'node' && kind !== 'perl') throw new LauncherError(`JM_LAUNCHER=${kind}: give node (the default) or perl`);
  return kind;
}

/** The program, its arguments and its environment (the jobs' one, which it passes on). */
function launcherCommand(kind: LauncherKind, runLog: string): [string, string[], NodeJS.ProcessEnv] {
  if (kind === 'perl') {
    checkPerl();
    return ['perl', [PERL_LAUNCHER, runLog], jobEnvironment()];
  }
  return [process.execPath, [NODE_LAUNCHER, runLog], launcherEnvironment(jobEnvironment())];
}

let perlChecked = false;
function checkPerl(): void {
  if (perlChecked) return;
  const probe = spawnSync('perl', ['-MPOSIX', '-e', '1'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new MissingProgramError('JM_LAUNCHER=perl, but perl was not found (Debian: apt-get install perl-base); unset JM_LAUNCHER to use the node launcher');
  }
  perlChecked = true;
}

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
    const [command, args, env] = launcherCommand(launcherKind(), runLog);
    this.child = spawn(command, args, { detached: true, stdio: ['pipe', 'ignore', 'pipe'], env });
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

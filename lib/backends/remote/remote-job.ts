import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { shellPath, shq } from '../../util/shell.js';
import { errorMessage } from '../../util/errors.js';
import type { SshPool } from '../../ssh/pool.js';
import { stepLabels, type FetchContext, type JobInfo, type RunResult } from '../job.js';
import { LocalJob } from '../local/local-job.js';
import { jobDir } from '../../runs/paths.js';
import { outputFile } from '../../runtime/layout.js';
import { absoluteRemote, remoteJobDir, type RemoteScope } from './paths.js';
import { stepStates } from '../../runs/run-table.js';
import { isJobPid } from '../../util/process.js';

// ClassType Remote: the job runs detached on an SSH host and writes its progress to the host's run
// log, which the fetcher follows. When the log has said nothing for a poll period, the fetcher
// polls all such jobs of a host in one command (RemotePoll), and isFinished() answers from that:
// alive, exited (its status file, written whole before its process ends), or gone. A host that
// cannot be reached means "state unknown": not finished, poll again.

export type RemotePoll = { kind: 'alive' } | { kind: 'exited'; exitCode: number } | { kind: 'gone' } | { kind: 'unknown'; reason: string };

export interface RemoteContext {
  pool: SshPool;
  scope: RemoteScope;
  /** Poll results of this round, by job id. */
  polls: Map<string, RemotePoll>;
}

export class RemoteJob extends LocalJob {
  private polled: RemotePoll | null = null;

  constructor(id: string, run: number, info: JobInfo | null, ctx: FetchContext, private readonly remote: RemoteContext) {
    super(id, run, info, ctx);
  }

  get hostName(): string | null {
    const host = this.info?.host ?? this.runState?.epoch ?? null;
    return host?.startsWith('host:') ? host.slice(5) : null;
  }

  get remoteDir(): string {
    return remoteJobDir(this.remote.scope, this.hostName ?? '', this.id, this.info?.spec ?? null);
  }

  override async isFinished(): Promise<boolean> {
    const run = this.runState;
    if (run && run.endedAt !== null) return true;
    this.polled = this.remote.polls.get(this.id) ?? null;
    return this.polled?.kind === 'exited' || this.polled?.kind === 'gone';
  }

  override result(): RunResult {
    const run = this.runState;
    if (run && run.endedAt !== null) return super.result();
    const startedAt = run?.forkedAt ?? this.info?.startedAt ?? null;
    const steps = run ? stepStates(run, stepLabels(this.info?.spec ?? null)) : [];
    if (this.polled?.kind === 'exited') {
      const code = this.polled.exitCode;
      if (code === 0) return { outcome: 'succeeded', exitCode: 0, reason: '', steps, startedAt };
      return { outcome: 'failed', exitCode: code, reason: this.describeEnd(`the job exited with code ${code}`), steps, startedAt };
    }
    return { outcome: 'failed', exitCode: null, reason: this.describeEnd(`its processes on ${this.hostName} ended without recording an exit status (killed?)`), steps, startedAt };
  }

  /** The last step's outputs, read on the host, and the Downloads, copied into LocalOutputDir. */
  override async getReturnData(): Promise<unknown> {
    const spec = this.info?.spec;
    const host = this.hostName;
    if (!spec || !host) return null;
    const ssh = this.remote.pool.connection(host);
    const last = spec.order.length - 1;
    let data: unknown = null;
    const step = spec.order[last];
    if (step.kind === 'function' || step.outputs.length > 0) {
      const read = await ssh.exec(`cat ${shellPath(`${this.remoteDir}/${outputFile(last, step.kind)}`)}`);
      if (read.code === 0) data = parseOutput(read.stdout, step.kind, step.outputs);
    }
    const downloads = spec.remote?.downloads ?? [];
    if (downloads.length) {
      const target = this.localOutputDir();
      const home = (await ssh.exec('printf "%s" "$HOME"')).stdout;
      const sftp = await ssh.sftp();
      for (const file of downloads) {
        const to = join(target, file);
        mkdirSync(dirname(to), { recursive: true });
        try {
          await fastGet(sftp, `${absoluteRemote(this.remoteDir, home)}/${file}`, to);
        } catch (err) {
          this.ctx.log.warn(`ResultFetcher: job ${this.id}: could not download ${file} from ${host}: ${errorMessage(err)}`);
        }
      }
      this.ctx.log.info(`ResultFetcher: job ${this.id}: downloaded ${downloads.join(', ')} into ${target}`);
    }
    return data;
  }

  private localOutputDir(): string {
    const configured = this.info?.spec?.remote?.localOutputDir;
    if (!configured) return jobDir(this.ctx.stateDir, this.id);
    return isAbsolute(configured) ? configured : resolve(this.info!.spec!.baseDir, configured);
  }

  override kill(signal: 'SIGTERM' | 'SIGKILL', reason: string): void {
    const pid = this.runState?.pid ?? this.info?.pid;
    const host = this.hostName;
    if (!isJobPid(pid) || !host) return;
    const name = signal.slice(3);
    this.remote.pool
      .connection(host)
      .exec(`kill -${name} -${pid} 2>/dev/null || kill -${name} ${pid} 2>/dev/null; exit 0`)
      .then(
        () => this.ctx.log.info(`ResultFetcher: job ${this.id}: ${signal} to process group ${pid} on ${host} (${reason})`),
        (err) => this.ctx.log.warn(`ResultFetcher: job ${this.id}: could not signal it on ${host}: ${errorMessage(err)}`),
      );
  }
}

function parseOutput(text: string, kind: 'run' | 'function', outputs: string[]): unknown {
  if (kind === 'run') return { [outputs[0]]: text.trim() };
  try {
    const stored = JSON.parse(text) as { outputs: Record<string, unknown> | null; value?: unknown };
    return stored.outputs ?? stored.value ?? null;
  } catch {
    return null;
  }
}

function fastGet(sftp: SFTPWrapper, remote: string, local: string): Promise<void> {
  return new Promise((ok, fail) => sftp.fastGet(remote, local, (err) => (err ? fail(err) : ok())));
}

/** One command that polls every listed job of a host: A alive, S exited (status), G gone. */
export function pollScript(jobs: { id: string; pid: number; dir: string }[]): string {
  return [
    'p() { if kill -0 "$2" 2>/dev/null; then echo "A $1"; elif [ -s "$3/.jm/status" ] && read s <"$3/.jm/status"; then echo "S $1 $s"; else echo "G $1"; fi; }',
    ...jobs.map((j) => `p ${shq(j.id)} ${j.pid} ${shellPath(j.dir)}`),
  ].join('\n');
}

export function parsePolls(stdout: string): Map<string, RemotePoll> {
  const polls = new Map<string, RemotePoll>();
  for (const line of stdout.trim().split('\n')) {
    const [kind, id, code] = line.split(' ');
    if (kind === 'A') polls.set(id, { kind: 'alive' });
    else if (kind === 'S') polls.set(id, { kind: 'exited', exitCode: Number(code) });
    else if (kind === 'G') polls.set(id, { kind: 'gone' });
  }
  return polls;
}

import { readdirSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { stringify } from 'yaml';
import { DIST_DIR } from '../../util/paths.js';
import { errorMessage, JobManagerError } from '../../util/errors.js';
import { shellPath, shq } from '../../util/shell.js';
import type { Logger } from '../../util/log.js';
import type { JobSpec } from '../../jobfile/job-spec.js';
import type { SshConnection } from '../../ssh/connection.js';
import type { SshPool } from '../../ssh/pool.js';
import { buildJobScript, GNU_CLOCK } from '../job-script.js';
import { INTERNAL_DIR } from '../../runtime/layout.js';
import { absoluteRemote, remoteBase, remoteJobDir, remoteRunLog, remoteRuntimeDir, RUNTIME_FILES, type RemoteScope } from './paths.js';
import { runId as makeRunId } from '../../runs/run-log.js';
import { LaunchShell } from './launch-shell.js';

// Starting Remote jobs on one host, for the starter (remote/launch.ts). A batch of jobs for one host costs one write to
// the host's launch shell (launch-shell.ts), plus SFTP for the files some jobs bring (modules,
// Uploads). Each job:
//  - gets a directory of its own; the job file is written there;
//  - is started detached: its own session (setsid) and process group, stdio to job.log, so that
//    neither the SSH channel closing nor the supervisor dying touches it;
//  - claims its run as the first thing it does once detached: `set -C` (noclobber) makes
//    `echo $$ > .jm/claim-<run>` an exclusive create, so a run starts at most once however often
//    its launch is sent, and a launch script cut short (the SSH session dying mid-way) leaves no
//    claim for a run that did not start. Recovery claims a run itself to learn whether it
//    started (see settleOrphans).
// The job's script records its progress in the host's run log, which the fetcher follows.

/** Launching cannot succeed by trying again (no SFTP on the host, say): the jobs are not started. */
export class LaunchError extends JobManagerError {
  override readonly code = 'JM_REMOTE_LAUNCH';
}

export interface RemoteLaunch {
  id: string;
  run: number;
  attempt: number;
  spec: JobSpec;
  /** The job definition as written, for the job file on the host. */
  raw: unknown;
}

export interface LaunchResult {
  /** Could not be started, with the reason (e.g. Node.js missing): record them as not started. */
  failed: { runId: string; reason: string }[];
}

interface HostFacts {
  home: string;
  node: boolean;
  /** How the job script reads the clock there: milliseconds with GNU date, else whole seconds. */
  clock: string;
}

export class HostLauncher {
  private readonly facts = new Map<SshConnection, Promise<HostFacts>>();
  private readonly runtimeReady = new Set<SshConnection>();
  private readonly shells = new Map<SshConnection, LaunchShell>();

  constructor(
    private readonly pool: SshPool,
    private readonly scope: RemoteScope,
    private readonly log: Logger,
  ) {}

  /** Starts the jobs on the host. Throws SshUnavailableError if the host cannot be reached. */
  async launch(hostName: string, jobs: RemoteLaunch[]): Promise<LaunchResult> {
    const ssh = this.pool.connection(hostName);
    const facts = await this.hostFacts(ssh);
    const failed: LaunchResult['failed'] = [];
    const ready: RemoteLaunch[] = [];
    for (const job of jobs) {
      const needsNode = job.spec.order.some((step) => step.kind === 'function');
      if (needsNode && !facts.node) failed.push({ runId: makeRunId(job.id, job.run), reason: `its Function steps need Node.js on ${hostName}, and node is not on the PATH there` });
      else ready.push(job);
    }
    const withFiles = ready.filter((job) => needsFiles(job.spec));
    if (withFiles.length) {
      await ssh.exec(`mkdir -p ${withFiles.map((job) => shellPath(`${this.dirOf(hostName, job)}/${INTERNAL_DIR}`)).join(' ')}`);
      let sftp: SFTPWrapper;
      try {
        sftp = await ssh.sftp();
      } catch (err) {
        if (!ssh.connected) throw err;
        throw new LaunchError(`SFTP is not available on ${hostName} (${errorMessage(err)}); jobs with Modules, Uploads or Function steps need it`);
      }
      if (withFiles.some((job) => job.spec.order.some((step) => step.kind === 'function'))) await this.ensureRuntime(ssh, facts, sftp);
      for (const job of withFiles) {
        try {
          await this.upload(sftp, hostName, job, facts);
        } catch (err) {
          if (!ssh.connected) throw err;
          failed.push({ runId: makeRunId(job.id, job.run), reason: `could not copy its files to ${hostName}: ${errorMessage(err)}` });
        }
      }
    }
    const launchable = ready.filter((job) => !failed.some((f) => f.runId === makeRunId(job.id, job.run)));
    if (launchable.length) await this.shellFor(ssh).run(this.launchScript(hostName, launchable, facts));
    return { failed };
  }

  /**
   * For runs a dead starter took but may not have launched: makes each run's claim. A claim made
   * here means the run never started (and now never will); one already there was made by the
   * run itself, and holds its pid.
   */
  async settleOrphans(hostName: string, orphans: { id: string; run: number; spec: JobSpec | null }[]): Promise<{ started: Map<string, number>; neverStarted: Set<string> }> {
    const ssh = this.pool.connection(hostName);
    const lines = [
      `check() { mkdir -p "$1/${INTERNAL_DIR}" 2>/dev/null; if (set -C; echo recovery >"$1/${INTERNAL_DIR}/claim-$2") 2>/dev/null; then echo "N $2"; else echo "Y $2 $(cat "$1/${INTERNAL_DIR}/claim-$2")"; fi; }`,
      ...orphans.map((o) => `check ${shellPath(remoteJobDir(this.scope, hostName, o.id, o.spec))} ${shq(makeRunId(o.id, o.run))}`),
    ];
    const result = await ssh.exec(lines.join('\n'));
    const started = new Map<string, number>();
    const neverStarted = new Set<string>();
    for (const line of result.stdout.trim().split('\n')) {
      const [verdict, runId, pid] = line.split(' ');
      if (verdict === 'N') neverStarted.add(runId);
      else if (verdict === 'Y') started.set(runId, Number(pid) || 0);
    }
    return { started, neverStarted };
  }

  private shellFor(ssh: SshConnection): LaunchShell {
    let shell = this.shells.get(ssh);
    if (!shell) {
      shell = new LaunchShell(ssh);
      this.shells.set(ssh, shell);
    }
    return shell;
  }

  private dirOf(host: string, job: RemoteLaunch): string {
    return remoteJobDir(this.scope, host, job.id, job.spec);
  }

  private hostFacts(ssh: SshConnection): Promise<HostFacts> {
    let facts = this.facts.get(ssh);
    if (!facts) {
      facts = ssh.exec('printf "%s\\n" "$HOME"; date +%s%3N; command -v node >/dev/null 2>&1 && echo node; exit 0').then((r) => {
        const [home, now, ...rest] = r.stdout.trim().split('\n');
        return { home, node: rest.includes('node'), clock: /^\d{13}$/.test(now) ? GNU_CLOCK : '$(date +%s)000' };
      });
      facts.catch(() => this.facts.delete(ssh));
      this.facts.set(ssh, facts);
    }
    return facts;
  }

  private async ensureRuntime(ssh: SshConnection, facts: HostFacts, sftp: SFTPWrapper): Promise<void> {
    if (this.runtimeReady.has(ssh)) return;
    const dir = absoluteRemote(remoteRuntimeDir(this.scope.deployment), facts.home);
    const present = await ssh.exec(`test -f ${shq(`${dir}/step-runner.js`)} && echo yes || mkdir -p ${shq(dir)}`);
    if (!present.stdout.includes('yes')) {
      await put(sftp, JSON.stringify({ type: 'module' }), `${dir}/package.json`);
      for (const file of RUNTIME_FILES) await fastPut(sftp, join(DIST_DIR, 'lib', 'runtime', file), `${dir}/${file}`);
    }
    this.runtimeReady.add(ssh);
  }

  /** Modules, Uploads, and (for Function steps) job.json with the modules' remote paths. */
  private async upload(sftp: SFTPWrapper, host: string, job: RemoteLaunch, facts: HostFacts): Promise<void> {
    const dir = absoluteRemote(this.dirOf(host, job), facts.home);
    const modules: Record<string, string> = {};
    for (const [key, path] of Object.entries(job.spec.modules)) {
      modules[key] = `${dir}/${INTERNAL_DIR}/modules/${key}${extname(path) || '.mjs'}`;
      await mkdirp(sftp, `${dir}/${INTERNAL_DIR}/modules`);
      await fastPut(sftp, path, modules[key]);
    }
    for (const upload of job.spec.remote?.uploads ?? []) {
      const local = isAbsolute(upload) ? upload : join(job.spec.baseDir, upload);
      await putTree(sftp, local, `${dir}/${basename(local)}`);
    }
    if (job.spec.order.some((step) => step.kind === 'function')) {
      const remoteSpec: JobSpec = { ...job.spec, modules };
      await put(sftp, JSON.stringify({ jobId: job.id, run: job.run, attempt: job.attempt, spec: remoteSpec, raw: job.raw }), `${dir}/${INTERNAL_DIR}/job.json`);
    }
  }

  private launchScript(host: string, jobs: RemoteLaunch[], facts: HostFacts): string {
    const runLog = remoteRunLog(this.scope, host);
    const lines = [
      `L=${shellPath(runLog)}`,
      // The batch's launch time, by the supervisor's clock (the one all the job's other times
      // use): each job's start line carries it, and no process is spent reading the host's clock.
      `export JM_LAUNCHED_AT=${Date.now()}`,
      // Every directory in one mkdir: a process per job would cost more than the job.
      `mkdir -p ${shellPath(remoteBase(this.scope, host))} ${jobs.map((job) => shellPath(`${this.dirOf(host, job)}/${INTERNAL_DIR}`)).join(' ')}`,
      'S=; command -v setsid >/dev/null 2>&1 && S=setsid',
      // dir, run, script, job file text. A run that already started exits at its claim.
      'start() {',
      `  cd "$1" || { echo "K $2 cannot enter the job directory $1 on $(hostname)" >>"$L"; return; }`,
      `  [ -e "${INTERNAL_DIR}/claim-$2" ] || printf "%s\\n" "$4" >job.yaml`,
      // In a subshell that exits at once, so the job's parent is init, which reaps it: the launch
      // shell lives on and would leave it a zombie (alive, to kill -0) until it next waits.
      '  ( $S sh -c "$3" </dev/null >>job.log 2>&1 & )',
      '  cd /',
      '}',
    ];
    for (const job of jobs) {
      const runId = makeRunId(job.id, job.run);
      const script = buildJobScript(job.spec, {
        runId, runLog, jobId: job.id, run: job.run, attempt: job.attempt, jobDir: this.dirOf(host, job),
        node: 'node', stepRunner: `${absoluteRemote(remoteRuntimeDir(this.scope.deployment), facts.home)}/step-runner.js`, clock: facts.clock, remote: true,
      });
      lines.push(`start ${shellPath(this.dirOf(host, job))} ${shq(runId)} ${shq(script)} ${shq(stringify(job.raw ?? {}).trimEnd())}`);
    }
    return lines.join('\n') + '\n';
  }
}

function needsFiles(spec: JobSpec): boolean {
  return Object.keys(spec.modules).length > 0 || (spec.remote?.uploads.length ?? 0) > 0 || spec.order.some((step) => step.kind === 'function');
}

function put(sftp: SFTPWrapper, text: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => sftp.writeFile(path, text, (err) => (err ? reject(err) : resolve())));
}

function fastPut(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
  return new Promise((resolve, reject) => sftp.fastPut(local, remote, (err) => (err ? reject(new Error(`uploading ${local}: ${err.message}`)) : resolve())));
}

function mkdirp(sftp: SFTPWrapper, path: string): Promise<void> {
  return new Promise((resolve) => sftp.mkdir(path, () => resolve())); // exists already: fine
}

async function putTree(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
  if (!statSync(local).isDirectory()) return fastPut(sftp, local, remote);
  await mkdirp(sftp, remote);
  for (const entry of readdirSync(local)) await putTree(sftp, join(local, entry), `${remote}/${entry}`);
}

import { stringify } from 'yaml';
import { errorMessage, JobManagerError } from '../../util/errors.js';
import { shellPath, shq } from '../../util/shell.js';
import type { Logger } from '../../util/log.js';
import type { JobSpec } from '../../jobfile/job-spec.js';
import type { RemoteFiles, SshConnection } from '../../ssh/connection.js';
import type { SshPool } from '../../ssh/pool.js';
import { buildJobScript, GNU_CLOCK } from '../job-script.js';
import { INTERNAL_DIR } from '../../runtime/layout.js';
import { absoluteRemote, remoteBase, remoteJobDir, remoteRunLog, remoteRuntimeDir, type RemoteScope } from './paths.js';
import { ensureRuntime, needsFiles, uploadJobFiles } from './job-files.js';
import { runId as makeRunId } from '../../runs/run-log.js';
import { LaunchShell, type LaunchBatch } from './launch-shell.js';
import type { Store } from '../../store/store.js';
import { leaseCs, type LeaseTimes } from './lease.js';
import { installWatchdogSh, WATCHDOG_DIRS, watchdogFile } from './watchdog.js';

// Starting Remote jobs on one host, for the starter (remote/launch.ts). A batch of jobs for one host costs one write to
// the host's launch shell (launch-shell.ts), plus the files some jobs bring (modules, Uploads:
// job-files.ts, over SFTP or, on hosts without it, exec channels). Each job:
//  - gets a directory of its own; the job file is written there;
//  - is started detached: its own session (setsid) and process group, stdio to job.log, so that
//    neither the SSH channel closing nor the supervisor dying touches it;
//  - claims its run as the first thing it does once detached: `set -C` (noclobber) makes
//    `echo $$ > .jm/claim-<run>` an exclusive create, so a run starts at most once however often
//    its launch is sent, and a launch script cut short (the SSH session dying mid-way) leaves no
//    claim for a run that did not start. Recovery claims a run itself to learn whether it
//    started (see settleOrphans);
//  - lives by the host's lease (lease.ts): the batch goes out with a host clock stamp received
//    before it, after its launch lease is recorded in Redis (leaseLaunch-N.lua: not to a host
//    marked down, and only runs still current), and a run that reaches the host later than a
//    lease after that stamp does not start. Each run registers itself for the host's watchdog
//    (watchdog.ts), which the batch installs and the first run starts.
// The job's script records its progress in the host's run log, which the fetcher follows.

/** Launching cannot succeed by trying again: the jobs are not started. */
export class LaunchError extends JobManagerError {
  override readonly code = 'JM_REMOTE_LAUNCH';
}

/** The host is marked down: nothing may be launched there now (the starter tries again later). */
export class HostDownError extends JobManagerError {
  override readonly code = 'JM_HOST_DOWN';
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
  /** Not sent: their jobs moved on (given up on, cancelled) before the launch was leased. */
  stale: string[];
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
    private readonly store: Store,
    private readonly lease: LeaseTimes,
    private readonly log: Logger,
  ) {}

  /**
   * Starts the jobs on the host. Throws SshUnavailableError if the host cannot be reached, and
   * HostDownError if it is marked down.
   */
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
      // SFTP where the host has it, else exec channels: asked only now, so jobs without files never touch SFTP.
      const files = await ssh.files();
      if (withFiles.some((job) => job.spec.order.some((step) => step.kind === 'function'))) await this.ensureRuntime(ssh, facts, files);
      for (const job of withFiles) {
        try {
          await uploadJobFiles(ssh, files, absoluteRemote(this.dirOf(hostName, job), facts.home), job);
        } catch (err) {
          if (!ssh.connected) throw err;
          failed.push({ runId: makeRunId(job.id, job.run), reason: `could not copy its files to ${hostName}: ${errorMessage(err)}` });
        }
      }
    }
    const launchable = ready.filter((job) => !failed.some((f) => f.runId === makeRunId(job.id, job.run)));
    if (launchable.length === 0) return { failed, stale: [] };
    // The order is what makes a late launch harmless (lease.ts): a host stamp received first,
    // then the launch lease recorded (the fetcher counts from it), then the batch sent.
    const shell = this.shellFor(ssh);
    const { stamp } = await shell.freshStamp(Math.min(this.lease.leaseMs / 4, 1000));
    const current = await this.store.leaseLaunch(hostName, launchable.map((job) => ({ id: job.id, run: job.run })));
    if (!current) throw new HostDownError(`host ${hostName} is marked down`);
    const admitted = launchable.filter((job) => current.has(job.id));
    const stale = launchable.filter((job) => !current.has(job.id)).map((job) => makeRunId(job.id, job.run));
    if (admitted.length) await shell.run(this.launchBatch(hostName, admitted, facts, stamp));
    return { failed, stale };
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
      // Claimed `refused`: its launch came too late and never started it (an N line in the run
      // log says so, and the fetcher ends the run from it).
      else if (verdict === 'Y' && pid !== 'refused') started.set(runId, Number(pid) || 0);
    }
    return { started, neverStarted };
  }

  private shellFor(ssh: SshConnection): LaunchShell {
    let shell = this.shells.get(ssh);
    if (!shell) {
      shell = new LaunchShell(ssh, this.log);
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

  private async ensureRuntime(ssh: SshConnection, facts: HostFacts, files: RemoteFiles): Promise<void> {
    if (this.runtimeReady.has(ssh)) return;
    await ensureRuntime(ssh, files, absoluteRemote(remoteRuntimeDir(this.scope.deployment), facts.home));
    this.runtimeReady.add(ssh);
  }

  /**
   * The batch that starts `jobs`, in both of the launch shell's forms (launch-shell.ts): the same
   * directories, watchdog file, job files and job scripts either way.
   */
  private launchBatch(host: string, jobs: RemoteLaunch[], facts: HostFacts, sentAfter: number): LaunchBatch {
    const runLog = remoteRunLog(this.scope, host);
    const base = remoteBase(this.scope, host);
    const lease = { base, leaseCs: leaseCs(this.lease), sentAfter };
    // The batch's launch time, by the supervisor's clock (the one all the job's other times
    // use): each job's start line carries it, and no process is spent reading the host's clock.
    const launchedAt = Date.now();
    const started = jobs.map((job) => {
      const runId = makeRunId(job.id, job.run);
      const dir = this.dirOf(host, job);
      const script = buildJobScript(job.spec, {
        runId, runLog, jobId: job.id, run: job.run, attempt: job.attempt, jobDir: dir,
        node: 'node', stepRunner: `${absoluteRemote(remoteRuntimeDir(this.scope.deployment), facts.home)}/step-runner.js`, clock: facts.clock, remote: lease,
      });
      return { runId, dir, script, yaml: stringify(job.raw ?? {}).trimEnd() };
    });
    const absolute = (path: string) => absoluteRemote(path, facts.home);
    return {
      sh: () => [
        `L=${shellPath(runLog)}`,
        `B=${shellPath(base)}`,
        `export JM_LAUNCHED_AT=${launchedAt}`,
        // Every directory in one mkdir: a process per job would cost more than the job.
        `mkdir -p ${WATCHDOG_DIRS.map((dir) => `"$B/${dir}"`).join(' ')} ${started.map((job) => shellPath(`${job.dir}/${INTERNAL_DIR}`)).join(' ')}`,
        installWatchdogSh('$B'),
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
        ...started.map((job) => `start ${shellPath(job.dir)} ${shq(job.runId)} ${shq(job.script)} ${shq(job.yaml)}`),
      ].join('\n') + '\n',
      spawner: () => ({
        runLog: absolute(runLog),
        launchedAt,
        dirs: [...WATCHDOG_DIRS.map((dir) => `${absolute(base)}/${dir}`), ...started.map((job) => `${absolute(job.dir)}/${INTERNAL_DIR}`)],
        watchdog: watchdogFile(absolute(base)),
        jobs: started.map((job) => ({ dir: absolute(job.dir), run: job.runId, claim: `${INTERNAL_DIR}/claim-${job.runId}`, script: job.script, yaml: job.yaml })),
      }),
    };
  }
}

import type { TakenJob } from '../store/types.js';
import type { Config } from '../config/config.js';
import type { JobSpec } from '../jobfile/job-spec.js';
import type { JobInfo } from '../runs/job-info.js';
import type { RunOutcome } from '../runs/outcome.js';
import type { RunRecorder } from '../runs/recorder.js';
import type { RunLogEvent } from '../runs/run-log.js';
import type { RunState, RunTable } from '../runs/run-table.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../util/log.js';

// An execution backend: how runs of one kind are started, watched and ended. One folder each:
//
//   local/    Local jobs: a launcher process forks each job's sh script (its own process group)
//   thread/   Thread jobs: Function steps in a worker-thread pool inside the starter
//   remote/   Remote jobs, and EC2 jobs once their instance is a host: detached sh scripts over SSH
//   ec2/      the EC2 provisioner that turns instances into hosts (run by the manager)
//
// A backend has two halves, one per actor thread, which share no memory: the starter's
// (LaunchSide: start granted runs, settle runs a dead starter left) and the fetcher's (WatchSide:
// what the runs report, how a silent run stands, kill, collect results). What one half tells the
// other travels through Redis (a transition) or, for what must outlive the supervisor (a detached
// process's start and exit), through run logs.

/** Which backend a run belongs to (EC2 jobs run on their instance as on any SSH host). */
export type BackendKind = 'local' | 'thread' | 'remote';

export function backendOf(classType: string, where: string | null): BackendKind {
  if (where?.startsWith('host:')) return 'remote';
  return classType === 'Thread' ? 'thread' : 'local';
}

/** A run granted a slot, as the starter takes it from Granted_Queue. */
export interface GrantedRun {
  id: string;
  run: number;
  attempt: number;
  /** The location whose slot it holds: local, or host:<name>. */
  where: string;
  spec: JobSpec;
  /** The job definition as written (for `self.yaml` inputs and the job file on a host), or null if not sent. */
  raw: unknown;
  /** The payload as taken, its texts unparsed: a Thread run passes these to its pool thread (strings cost little to send). */
  taken: TakenJob;
}

/** A granted (or running) run that no queue holds: taken by a starter that may have died before launching it. */
export interface Orphan {
  id: string;
  run: number;
  state: 'granted' | 'running';
  where: string;
  classType: string;
  spec: JobSpec | null;
  /** The starter incarnation (local) or host that reported its start; null if none did. */
  startedBy: string | null;
}

export interface LaunchContext {
  config: Config;
  store: Store;
  log: Logger;
  /** Records starts and ends that no run log reports (Thread runs, launches that failed). */
  recorder: RunRecorder;
  /** A new local run log exists: the fetcher should follow it now. */
  runLogOpened(epoch: string, path: string): void;
  /** Runs were launched on this host: the fetcher should follow its run log now. */
  launchedOn(host: string): void;
}

/** The starter's half of a backend. */
export interface LaunchSide {
  /** Starts a granted run, or records why it cannot start. Never throws. */
  start(run: GrantedRun): void;
  /** Sends what start() gathered (one write per batch). */
  flush(): void;
  /** Work still pending (launches waiting for a host): the starter looks again soon. */
  readonly busy: boolean;
  /** Runs a dead starter left: settles those it can now; returns the ones to look at again. */
  settle(orphans: Orphan[]): Promise<Orphan[]>;
  close(): Promise<void>;
}

/** A run as the fetcher looks at it: its job record's fields, and what its run log said so far. */
export interface WatchedRun {
  info: JobInfo;
  log: RunState | undefined;
}

export type KillSignal = 'SIGTERM' | 'SIGKILL';

/** Run log events from one source: a local launcher's epoch, or host:<name>. */
export interface RunLogBatch {
  source: string;
  events: RunLogEvent[];
}

export interface WatchContext {
  config: Config;
  store: Store;
  log: Logger;
  /** What the run logs said so far, for every backend whose runs write one. */
  table: RunTable;
  /** Something happened that the fetcher should look at now. */
  wake(): void;
}

/** A run that a backend saw end outside the run logs (its host given up on). */
export interface EndedRun {
  id: string;
  run: number;
  outcome: RunOutcome;
}

/** The fetcher's half of a backend. */
export interface WatchSide {
  /** Periodic upkeep (which logs to follow, which hosts answer): runs it found ended, and when to call again (ms). */
  refresh(): Promise<{ ended: EndedRun[]; nextInMs: number }>;
  /** Run log events that arrived since the last call. */
  drain(): RunLogBatch[];
  /** Everything drain() gave so far is recorded in Redis: save how far the logs were read, forget finished logs. */
  commit(): Promise<void>;
  /**
   * Runs whose run log has not said they ended: the outcome of each that has, by job id. A run
   * left out is still running, or its state is unknown (an unreachable host): look again later.
   */
  observe(runs: WatchedRun[]): Promise<Map<string, RunOutcome>>;
  /** Signals the run's whole process tree (or stops its thread). */
  kill(run: WatchedRun, signal: KillSignal, reason: string): void;
  /**
   * What a run that ended leaves: the last step's outputs if it succeeded (the return data), and
   * for remote runs their Downloads (fetched per DownloadsOn, failed or not). Throws when it
   * cannot be read yet (a host that does not answer): the fetcher tries again later.
   */
  collect(run: WatchedRun, outcome: RunOutcome): Promise<unknown>;
  close(): Promise<void>;
}

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Keys } from '../lib/store/keys.js';
import { lockOwner } from '../lib/util/state-lock.js';
import { CLI_MAIN } from '../spec/support/cli.js';
import { seconds } from './stats.js';

// What every benchmark does with JobManager: start a supervisor (detached, with its embedded
// redis-server) with the given config, run the command line against it and time it from the
// outside, read what Redis recorded (the Events stream, job records, INFO), stop the supervisor.

export interface Timed {
  /** `queue --wait`, from the command's start to its exit (reading the files included). */
  endToEnd: number;
  /** First grant to the last state change. */
  pipeline: number;
  /** First job queued to the last state change. */
  queueToEnd: number;
}

export interface SupervisorOptions {
  /** Its config file's content; StateDir is required (each run its own). */
  config: Record<string, unknown> & { StateDir: string };
  /** Added to its environment (JM_LAUNCHER for the launcher comparison). */
  env?: NodeJS.ProcessEnv;
}

/** Supervisors started and not yet stopped: stopped by stopAll() if the bench is interrupted. */
const running = new Set<BenchSupervisor>();

export function stopAllSupervisors(): void {
  for (const supervisor of running) supervisor.stop();
}

export class BenchSupervisor {
  readonly keys: Keys;
  private redisClient: Redis | null = null;

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    readonly stateDir: string,
    deployment: string,
  ) {
    this.keys = new Keys(deployment);
  }

  /** `jobmanager start --detach` with a config file written in `dir`. */
  static start(dir: string, options: SupervisorOptions): BenchSupervisor {
    const configFile = join(dir, 'jobmanager.yaml');
    writeFileSync(configFile, JSON.stringify(options.config));
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, JM_CONFIG: configFile };
    delete env.JM_REDIS_URL;
    delete env.JM_STATE_DIR;
    execFileSync(process.execPath, [CLI_MAIN, 'start', '--detach'], { env, stdio: 'ignore' });
    const supervisor = new BenchSupervisor(env, options.config.StateDir, String(options.config.Deployment ?? 'default'));
    running.add(supervisor);
    return supervisor;
  }

  /** Runs `jobmanager ARGS...` to its end; its time from the outside, and what it printed. */
  cli(...args: string[]): { seconds: number; stdout: string } {
    const start = process.hrtime.bigint();
    const result = spawnSync(process.execPath, [CLI_MAIN, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    const time = seconds(start);
    if (result.status !== 0) throw new Error(`jobmanager ${args.join(' ')} exited ${result.status}: ${result.stderr.trim().split('\n').slice(-5).join('\n')}`);
    return { seconds: time, stdout: result.stdout };
  }

  /** The supervisor's pid (from the lock file of its state directory). */
  get pid(): number {
    const pid = lockOwner(this.stateDir);
    if (pid === null) throw new Error(`no supervisor is running with the state directory ${this.stateDir}`);
    return pid;
  }

  /** Resident memory of the supervisor (all its threads) now, and at its peak, in MB. */
  memory(): { rss: number; peak: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  }

  /** A connection to its embedded redis-server. */
  get redis(): Redis {
    this.redisClient ??= new Redis({ path: join(this.stateDir, 'redis', 'redis.sock') });
    return this.redisClient;
  }

  /** Times of the Events stream (ms), by state: the pipeline's own span as Redis saw it. */
  async eventTimes(): Promise<{ first: (state: string) => number; last: number }> {
    const events = await this.redis.xrange(this.keys.events, '-', '+');
    const time = (id: string) => Number(id.split('-')[0]);
    return {
      first: (state) => time(events.find(([, f]) => f[f.indexOf('state') + 1] === state)![0]),
      last: time(events[events.length - 1][0]),
    };
  }

  /** `queue --wait DIR`, timed from outside, and the pipeline's span from the Events stream. */
  async queueWait(jobs: string): Promise<Timed> {
    const { seconds: endToEnd } = this.cli('queue', '--wait', jobs);
    const events = await this.eventTimes();
    return { endToEnd, pipeline: (events.last - events.first('granted')) / 1000, queueToEnd: (events.last - events.first('queued')) / 1000 };
  }

  stop(): void {
    if (!running.delete(this)) return;
    this.redisClient?.disconnect();
    this.redisClient = null;
    execFileSync(process.execPath, [CLI_MAIN, 'stop'], { env: this.env, stdio: 'ignore' });
  }
}

/** Starts a supervisor, times `queue --wait DIR` of `jobs`, stops it. */
export async function timeQueueWait(dir: string, options: SupervisorOptions, jobs: string): Promise<Timed> {
  const supervisor = BenchSupervisor.start(dir, options);
  try {
    return await supervisor.queueWait(jobs);
  } finally {
    supervisor.stop();
  }
}

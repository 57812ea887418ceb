import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Store } from '../../lib/store/store.js';
import { runCli, type CliResult } from './cli.js';
import { killAll, pidsWithEnv } from './processes.js';
import { RedisServer } from './redis-server.js';
import { SupervisorProcess } from './supervisor-process.js';
import { removeDir, tempDir } from './temp.js';

// One spec's world: a temporary directory with a state directory, a config file, job files, its
// own redis-server (or the embedded one), and the supervisors it started. dispose() stops all of
// it by pid, including any job process still running.

export const FAST_CONFIG = { LocalMaxJobs: 4, RetryBackoff: '50ms', KillGrace: '1s', LogLevel: 'debug', PollPeriod: '2s' };

export interface WorkspaceOptions {
  config?: Record<string, unknown>;
  /** Use the embedded redis-server instead of one started by the harness. */
  embedded?: boolean;
  appendOnly?: boolean;
  /** A Redis the spec runs itself (a Sentinel or Cluster address): no redis-server of the workspace. */
  redisUrl?: string;
}

export class Workspace {
  readonly stateDir: string;
  readonly configFile: string;
  private readonly supervisors: SupervisorProcess[] = [];
  private readonly stores: Store[] = [];

  private constructor(
    readonly dir: string,
    readonly redis: RedisServer | null,
    private readonly externalUrl: string | null = null,
  ) {
    this.stateDir = join(dir, 'state');
    this.configFile = join(dir, 'jobmanager.yaml');
  }

  static async create(options: WorkspaceOptions = {}): Promise<Workspace> {
    const dir = tempDir('jm-ws-');
    const redis = options.embedded || options.redisUrl ? null : await RedisServer.start({ appendOnly: options.appendOnly });
    const ws = new Workspace(dir, redis, options.redisUrl ?? null);
    ws.writeConfig({ ...FAST_CONFIG, ...options.config });
    return ws;
  }

  writeConfig(config: Record<string, unknown>): void {
    if (typeof config.Deployment === 'string') this.deployment = config.Deployment;
    writeFileSync(this.configFile, JSON.stringify(config, null, 2));
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, JM_STATE_DIR: this.stateDir, JM_CONFIG: this.configFile, ...extra };
    delete env.JM_REDIS_URL;
    if (this.redis || this.externalUrl) env.JM_REDIS_URL = this.redisUrl;
    return env;
  }

  get redisUrl(): string {
    if (this.externalUrl) return this.externalUrl;
    return this.redis ? this.redis.url : `unix://${join(this.stateDir, 'redis', 'redis.sock')}`;
  }

  /** Writes a file under the workspace; returns its path. */
  write(name: string, text: string): string {
    const path = join(this.dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return path;
  }

  cli(...args: string[]): Promise<CliResult> {
    return runCli(args, this.env(), this.dir);
  }

  async startSupervisor(env = this.env()): Promise<SupervisorProcess> {
    const supervisor = await SupervisorProcess.start(env);
    this.supervisors.push(supervisor);
    return supervisor;
  }

  /**
   * Another supervisor's world on the same Redis, as on a second workstation: a state directory
   * and a config file of its own (this workspace's config with `config` over it). Start it with
   * startSupervisor(node.env); node.cli runs commands there. Its jobs are killed by dispose().
   */
  node(name: string, config: Record<string, unknown>): { stateDir: string; env: NodeJS.ProcessEnv; cli: (...args: string[]) => Promise<CliResult> } {
    const stateDir = join(this.dir, `state-${name}`);
    const configFile = join(this.dir, `jobmanager-${name}.yaml`);
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(this.configFile, 'utf8')), ...config }, null, 2));
    this.nodeStateDirs.push(stateDir);
    const env = this.env({ JM_STATE_DIR: stateDir, JM_CONFIG: configFile });
    return { stateDir, env, cli: (...args: string[]) => runCli(args, env, this.dir) };
  }

  private readonly nodeStateDirs: string[] = [];

  /** The supervisor started last. */
  get supervisor(): SupervisorProcess | null {
    return this.supervisors[this.supervisors.length - 1] ?? null;
  }

  /** The lines of the last supervisor's log that say an actor died: an after hook expects none. */
  actorCrashes(): string[] {
    return this.supervisor?.log.match(/.*actor exited.*/g) ?? [];
  }

  /** The Deployment name in the config (each workspace may set its own). */
  deployment = 'default';

  async store(): Promise<Store> {
    const store = await Store.open(this.redisUrl, this.deployment, 'cli');
    this.stores.push(store);
    return store;
  }

  /** Job ids printed by `queue` (its table's first column). */
  static ids(queueOutput: string): string[] {
    return queueOutput.trim().split('\n').slice(1).map((line) => line.split(/\s+/)[0]);
  }

  async dispose(): Promise<void> {
    for (const store of this.stores) await store.close();
    for (const supervisor of this.supervisors) await supervisor.stop();
    for (const dir of [this.stateDir, ...this.nodeStateDirs]) killAll(pidsWithEnv('JM_JOB_DIR', dir));
    if (this.redis) await this.redis.stop();
    else if (!this.externalUrl) await runCli(['stop'], this.env(), this.dir);
    removeDir(this.dir);
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { answersPing } from '../../lib/store/embedded-redis.js';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';

// A real redis-server for specs: its own temporary directory and unix socket, append-only file
// on when asked (for kill -9 specs), stopped by pid. Nothing is mocked.

export interface RedisServerOptions {
  appendOnly?: boolean;
  /** Reuse a directory (a restart after kill -9 keeps its data). */
  dir?: string;
  extraArgs?: string[];
}

export class RedisServer {
  private constructor(
    readonly dir: string,
    private child: ChildProcess,
    private readonly options: RedisServerOptions,
  ) {}

  get socket(): string {
    return join(this.dir, 'redis.sock');
  }

  get url(): string {
    return `unix://${this.socket}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = options.dir ?? tempDir('jm-redis-');
    const server = new RedisServer(dir, RedisServer.spawn(dir, options), options);
    await server.ready();
    return server;
  }

  private static spawn(dir: string, options: RedisServerOptions): ChildProcess {
    const args = [
      '--port', '0', '--unixsocket', join(dir, 'redis.sock'), '--unixsocketperm', '700', '--dir', dir,
      '--save', '', '--appendonly', options.appendOnly ? 'yes' : 'no', '--appendfsync', 'everysec', '--logfile', join(dir, 'redis.log'),
      ...(options.extraArgs ?? []),
    ];
    return spawn('redis-server', args, { stdio: 'ignore' });
  }

  private async ready(): Promise<void> {
    await waitFor('redis-server to answer PING', () => answersPing({ path: this.socket }));
  }

  client(): Redis {
    const client = new Redis({ path: this.socket, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    return client;
  }

  /** kill -9: no shutdown, no final write. */
  async kill9(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Start again on the same directory (and append-only file). */
  async restart(): Promise<void> {
    this.child = RedisServer.spawn(this.dir, this.options);
    await this.ready();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    if (!this.options.dir) removeDir(this.dir);
  }
}

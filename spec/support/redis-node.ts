import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './wait-for.js';
import { freePort } from './free-port.js';

// One redis-server (or redis-server --sentinel) on a free TCP port of 127.0.0.1, its config,
// log and data in a directory of the deployment that started it: the parts of the Sentinel and
// Cluster harnesses (redis-sentinel.ts, redis-cluster.ts). Stopped by pid.

export class RedisNode {
  private constructor(
    readonly name: string,
    readonly port: number,
    readonly log: string,
    private readonly child: ChildProcess,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts `redis-server` with the config lines given (port, bind, dir and log added), `--sentinel`
   * when asked; resolves once it answers PING.
   */
  static async start(dir: string, name: string, lines: string[], options: { sentinel?: boolean } = {}): Promise<RedisNode> {
    const port = await freePort();
    const log = join(dir, `${name}.log`);
    const config = join(dir, `${name}.conf`);
    // A Sentinel rewrites its config file (what it learns of replicas and other Sentinels).
    writeFileSync(config, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `logfile ${log}`, ...lines, ''].join('\n'));
    const child = spawn('redis-server', [config, ...(options.sentinel ? ['--sentinel'] : [])], { stdio: 'ignore' });
    const node = new RedisNode(name, port, log, child);
    await waitFor(`${name} to answer PING (log: ${log})`, async () => {
      if (!node.running) throw new Error(`${name} exited (${child.exitCode}); see ${log}`);
      const client = node.client();
      try {
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        client.disconnect();
      }
    });
    return node;
  }

  /** A plain client of this one node (fails fast: the spec inspects, it does not wait out faults). */
  client(): Redis {
    const client = new Redis({ host: '127.0.0.1', port: this.port, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 1000 });
    client.on('error', () => {});
    return client;
  }

  /** One command on a connection of its own. */
  async call(...args: (string | number)[]): Promise<unknown> {
    const client = this.client();
    try {
      return await client.call(String(args[0]), ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  /** kill -9: no shutdown, no last word to replicas or Sentinels. */
  async kill9(): Promise<void> {
    await this.end('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.end('SIGTERM');
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    await exited;
  }
}

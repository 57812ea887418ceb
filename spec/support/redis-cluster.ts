import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { clusterUrl } from '../../lib/store/redis-address.js';
import { freePort } from './free-port.js';
import { RedisNode } from './redis-node.js';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';

// A real Redis Cluster on loopback: three masters (no replicas), made one cluster by
// `redis-cli --cluster create`, in one temporary directory. Stopped by pid.

const run = promisify(execFile);

export class RedisCluster {
  private constructor(
    readonly dir: string,
    readonly nodes: RedisNode[],
  ) {}

  /** redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 */
  get url(): string {
    return clusterUrl(this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
  }

  static async start(masters = 3): Promise<RedisCluster> {
    const dir = tempDir('jm-cluster-');
    const nodes: RedisNode[] = [];
    try {
      for (let i = 1; i <= masters; i++) {
        // The bus port is given: port + 10000 (the default) may be taken, or past 65535.
        nodes.push(await RedisNode.start(dir, `node${i}`, [
          'cluster-enabled yes', `cluster-config-file nodes-${i}.conf`, `cluster-port ${await freePort()}`,
          'cluster-node-timeout 2000', 'save ""', 'appendonly no',
        ]));
      }
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-yes'], { timeout: 30_000 });
      for (const node of nodes) {
        await waitFor(`${node.name} to see the cluster whole`, async () => {
          const info = String(await node.call('CLUSTER', 'INFO'));
          return (/cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(info)) || null;
        }, 30_000);
      }
      return new RedisCluster(dir, nodes);
    } catch (err) {
      for (const node of nodes) await node.stop();
      removeDir(dir);
      throw err;
    }
  }

  /** Every key matching `pattern` on every node, with the node that holds it. */
  async keys(pattern: string): Promise<{ key: string; node: string }[]> {
    const found: { key: string; node: string }[] = [];
    for (const node of this.nodes) {
      const client = node.client();
      try {
        for await (const keys of client.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>) {
          for (const key of keys) found.push({ key, node: node.name });
        }
      } finally {
        client.disconnect();
      }
    }
    return found;
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await node.stop();
    removeDir(this.dir);
  }
}

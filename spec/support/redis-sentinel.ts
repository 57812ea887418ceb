import { sentinelUrl } from '../../lib/store/redis-address.js';
import { RedisNode } from './redis-node.js';
import { TcpLink } from './tcp-link.js';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';

// A real Redis Sentinel deployment on loopback: a master, one replica and three Sentinels
// (quorum 2), in one temporary directory, quick to fail over (down-after 1 s). Specs kill the
// master with kill -9 and wait for the Sentinels to promote the replica. The replica reaches
// the master through a TcpLink, which a spec can freeze: then the master acknowledges writes
// that the replica never gets, as asynchronous replication allows. Stopped by pid.

export const MASTER_NAME = 'mymaster';
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 3000;

export class SentinelDeployment {
  private constructor(
    readonly dir: string,
    readonly servers: RedisNode[],
    readonly sentinels: RedisNode[],
    /** Between the replica and the master (replicaof names the link's port). */
    readonly replication: TcpLink,
  ) {}

  /** redis+sentinel://127.0.0.1:P1,…/mymaster */
  get url(): string {
    return sentinelUrl(this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), MASTER_NAME);
  }

  static async start(): Promise<SentinelDeployment> {
    const dir = tempDir('jm-sentinel-');
    const nodes: RedisNode[] = [];
    let link: TcpLink | null = null;
    try {
      const common = ['save ""', 'appendonly no', 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0'];
      const master = await RedisNode.start(dir, 'master', common);
      nodes.push(master);
      link = await TcpLink.open(master.port);
      const replica = await RedisNode.start(dir, 'replica', [...common, `replicaof 127.0.0.1 ${link.port}`]);
      nodes.push(replica);
      const sentinels: RedisNode[] = [];
      for (let i = 1; i <= 3; i++) {
        sentinels.push(await RedisNode.start(dir, `sentinel${i}`, [
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
        ], { sentinel: true }));
        nodes.push(sentinels[i - 1]);
      }
      const deployment = new SentinelDeployment(dir, [master, replica], sentinels, link);
      await deployment.settled(master);
      return deployment;
    } catch (err) {
      for (const node of nodes) await node.stop();
      await link?.close();
      removeDir(dir);
      throw err;
    }
  }

  /**
   * Waits until `master` is the master every Sentinel names, with a live link to a replica, and
   * each Sentinel knows the replica and the two other Sentinels (they vote on a failover).
   */
  async settled(master: RedisNode): Promise<void> {
    await waitFor('the replica to be in sync with the master', async () => /connected_slaves:1\b/.test(String(await master.call('INFO', 'replication'))) || null, 30_000);
    for (const sentinel of this.sentinels) {
      await waitFor(`${sentinel.name} to know the master, its replica and the other Sentinels`, async () => {
        const named = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[] | null;
        const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as string[][];
        const peers = (await sentinel.call('SENTINEL', 'SENTINELS', MASTER_NAME)) as unknown[];
        const liveReplica = replicas.some((fields) => !String(fields[fields.indexOf('flags') + 1]).includes('down'));
        return (named?.[1] === String(master.port) && liveReplica && peers.length === 2) || null;
      }, 30_000);
    }
  }

  /** The server the Sentinels name as master now (asked of the first Sentinel that answers). */
  async master(): Promise<RedisNode | null> {
    for (const sentinel of this.sentinels) {
      try {
        const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[];
        return this.servers.find((s) => String(s.port) === port) ?? null;
      } catch {
        // that Sentinel is down: ask the next
      }
    }
    return null;
  }

  async stop(): Promise<void> {
    for (const node of [...this.sentinels, ...this.servers]) await node.stop();
    await this.replication.close();
    removeDir(this.dir);
  }
}

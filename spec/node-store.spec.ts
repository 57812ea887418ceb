import { expect } from 'chai';
import { Store, parseGrantedPayload, type GrantPool, type NewJob } from '../lib/store/store.js';
import { nodeLocation } from '../lib/store/keys.js';
import { withIncludes } from '../lib/store/scripts.js';
import { NODE_LEASE_MS, type NodeLease } from '../lib/nodes/lease.js';
import { RedisServer } from './support/redis-server.js';

// The node transitions on a real redis-server: claiming a node name, the EC2 lease, giving a
// down node's granted jobs to others, and a deployment from before nodes adopted by its node.

const T0 = 1_800_000_000_000;
const SPEC = JSON.stringify({ classType: 'Local', name: 'x', order: [{ kind: 'run', run: 'true' }] });

describe('nodes in the store (Lua transitions on a real redis-server)', function () {
  let server: RedisServer;
  let deployments = 0;
  const stores: Store[] = [];

  before(async function () {
    server = await RedisServer.start();
  });

  afterEach(async function () {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  after(async function () {
    await server?.stop();
  });

  /** One store per node of a fresh deployment. */
  async function deployment(...nodes: string[]): Promise<Store[]> {
    const name = `n${++deployments}`;
    const opened = await Promise.all(nodes.map((node) => Store.open(server.url, name, 'cli', { node })));
    stores.push(...opened);
    return opened;
  }

  function pools(store: Store, limit: number): GrantPool[] {
    const own = nodeLocation(store.node);
    return [{ location: own, limit, queues: [own, 'local'] }];
  }

  /** `count` local jobs queued for any node (Job_Queue:local). */
  async function queueLocal(store: Store, count: number): Promise<string[]> {
    const jobs: NewJob[] = Array.from({ length: count }, (_, i) => ({ token: `t${i}`, name: `j${i}`, classType: 'Local', file: '/x.yaml', baseDir: '/', raw: {} }));
    const ids = await store.addJobs(jobs, T0);
    await store.route(ids.map((entry) => ({ entry, location: 'local', detail: SPEC, pollMs: 1000, timeoutMs: null, retries: 0 })), T0);
    return ids;
  }

  const lease = (host: string, stateDir: string, pid = 100): Omit<NodeLease, 'since' | 'renewedAt'> => ({ host, pid, stateDir, localMaxJobs: 4, status: 'running' });

  it('builds a node\'s queue and signal names in Lua as keys.ts does', async function () {
    const [ws1] = await deployment('ws1');
    const lua = withIncludes(`-- @include keys
      local out = {}
      for i = 1, #ARGV do
        out[#out + 1] = grantedQueueKey(KEYS[1], ARGV[i])
        out[#out + 1] = runningQueueKey(KEYS[1], ARGV[i])
        out[#out + 1] = nodeSignalKey(KEYS[1], 'fetcher', ARGV[i])
        out[#out + 1] = slotSetKey(KEYS[1], 'local:' .. ARGV[i])
      end
      return out`);
    const nodes = ['ws1', 'lab-7.example'];
    const k = ws1.keys;
    expect(await ws1.redis.eval(lua, 1, k.prefix, ...nodes)).to.deep.equal(nodes.flatMap((n) => [k.grantedQueueOf(n), k.runningQueueOf(n), k.nodeSignal('fetcher', n), k.slotSet(nodeLocation(n))]));
  });

  it('gives a node name to one supervisor at a time; the same machine and state directory take it over at once', async function () {
    const [ws1] = await deployment('ws1');
    expect(await ws1.claimNode(lease('a', '/s'), NODE_LEASE_MS, T0)).to.equal(null);
    const held = await ws1.claimNode(lease('b', '/s', 200), NODE_LEASE_MS, T0 + 1000);
    expect(held, 'another machine is refused while the lease is fresh').to.include({ host: 'a', pid: 100, stateDir: '/s', since: T0 });
    expect(await ws1.claimNode(lease('a', '/other', 300), NODE_LEASE_MS, T0 + 1000), 'another state directory too').to.include({ host: 'a' });
    expect(await ws1.claimNode(lease('a', '/s', 400), NODE_LEASE_MS, T0 + 2000), 'the same node restarted (kill -9, then start)').to.equal(null);
    expect(await ws1.claimNode(lease('b', '/s', 200), NODE_LEASE_MS, T0 + 2000 + NODE_LEASE_MS), 'a lapsed lease is taken').to.equal(null);
    expect(await ws1.claimNode({ ...lease('b', '/s', 200), status: 'stopped' }, NODE_LEASE_MS, T0 + 13_000)).to.equal(null);
    expect(await ws1.claimNode(lease('c', '/t', 500), NODE_LEASE_MS, T0 + 13_001), 'a stopped node is free').to.equal(null);
    expect((await ws1.nodes()).get('ws1')).to.deep.equal({ host: 'c', pid: 500, stateDir: '/t', since: T0 + 13_001, renewedAt: T0 + 13_001, localMaxJobs: 4, status: 'running' });
  });

  it('holds the EC2 lease for one node at a time, until it is released', async function () {
    const [ws1, ws2] = await deployment('ws1', 'ws2');
    expect(await ws1.ec2Lease('hold', 60_000)).to.equal('ws1');
    expect(await ws2.ec2Lease('hold', 60_000)).to.equal('ws1');
    expect(await ws2.ec2Lease('release', 60_000), 'only its holder releases it').to.equal('ws1');
    expect(await ws1.ec2Lease('release', 60_000)).to.equal(null);
    expect(await ws2.ec2Lease('hold', 60_000)).to.equal('ws2');
    expect(await ws1.ec2LeaseHolder()).to.equal('ws2');
  });

  it('gives the jobs granted to a node down longer than NodeDownAfter, not started, to the other nodes', async function () {
    const [ws1, ws2] = await deployment('ws1', 'ws2');
    await ws1.claimNode(lease('a', '/a'), NODE_LEASE_MS, T0);
    await ws2.claimNode(lease('b', '/b'), NODE_LEASE_MS, T0);
    const ids = await queueLocal(ws1, 5);
    expect(await ws1.grant(pools(ws1, 2), 100, T0)).to.deep.equal({ granted: 2, nextDueMs: null });
    const started = parseGrantedPayload((await ws1.redis.rpop(ws1.keys.grantedQueue))!)!; // its starter took one
    expect(await ws1.getJob(ids[1])).to.include({ state: 'granted', node: 'ws1', host: 'local:ws1' });
    expect(await ws2.reclaimNode('ws1', 60_000, T0 + 59_999), 'not down that long yet').to.equal(-1);
    expect(await ws2.reclaimNode('ws1', 60_000, T0 + 60_000)).to.equal(1);
    expect(await ws1.getJob(ids[1])).to.include({ state: 'queued', reason: 'node ws1 is down: given to another node' });
    expect(await ws1.slotHolders('local:ws1'), 'the slot of the job its starter took stays held').to.deep.equal([started.id]);
    expect(await ws2.grant(pools(ws2, 4), 100, T0 + 60_001)).to.deep.equal({ granted: 4, nextDueMs: null });
    const taken = (await ws2.redis.lrange(ws2.keys.grantedQueue, 0, -1)).map((p) => parseGrantedPayload(p)!);
    expect(taken.map((t) => t.id).reverse(), 'the given-back job first, then the queue in order').to.deep.equal([ids[1], ids[2], ids[3], ids[4]]);
    expect(taken.find((t) => t.id === ids[1])).to.include({ run: 2, where: 'local:ws2' });
  });

  it('lets a node started where the supervisor before nodes ran adopt its slots, queues and run logs', async function () {
    const [ws1] = await deployment('ws1');
    const ids = await queueLocal(ws1, 3);
    const k = ws1.keys;
    const old = k.legacy;
    // As one supervisor left them: 1 running (LocalJobs, Running_Queue), 2 granted (payload waiting).
    for (const [i, state] of [[0, 'running'], [1, 'granted']] as const) {
      await ws1.redis.lrem(k.locationQueue('local'), 0, ids[i]);
      await ws1.redis.hset(k.job(ids[i]), { state, run: 1, slot: 'local', host: 'local' });
      await ws1.redis.sadd(old.localJobs, ids[i]);
    }
    await ws1.redis.zadd(old.runningQueue, T0 + 5000, ids[0]);
    await ws1.redis.lpush(old.grantedQueue, [ids[1], 1, 1, 'local', SPEC, 'null'].join('\n'));
    await ws1.redis.hset(old.runlogs, '7', '/state/runs/7.log');
    await ws1.redis.hset(old.supervisor, { pid: 1, host: 'a', stateDir: '/a' });
    expect(await ws1.hasLegacyKeys()).to.equal(true);
    expect(await ws1.legacySupervisor()).to.deep.equal({ host: 'a', stateDir: '/a' });
    await ws1.adoptLegacy();
    expect(await ws1.hasLegacyKeys(), 'the old keys are gone').to.equal(false);
    expect(await ws1.slotHolders('local:ws1')).to.deep.equal([ids[0], ids[1]]);
    expect(await ws1.redis.zrange(k.runningQueue, 0, -1, 'WITHSCORES')).to.deep.equal([ids[0], String(T0 + 5000)]);
    expect(parseGrantedPayload((await ws1.redis.rpop(k.grantedQueue))!)).to.include({ id: ids[1], run: 1, where: 'local:ws1' });
    expect(Object.fromEntries(await ws1.runLogs())).to.deep.equal({ 7: '/state/runs/7.log' });
    expect(await ws1.getJob(ids[0])).to.include({ host: 'local:ws1', node: 'ws1' });
    expect(await ws1.waitingCount('local'), 'queued jobs wait where any node finds them').to.equal(1);
  });
});

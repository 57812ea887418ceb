import { errorMessage } from '../lib/util/errors.js';
import { sleep, type StopSignal } from '../lib/util/stop-signal.js';
import type { World } from './world.js';
import { GIVEN_UP_AFTER_MS } from './world.js';
import { pick } from './workload.js';

// The fault injector: at seeded random moments (every 1-4 s), one fault, chosen by weight.
// Faults that end by themselves (a restart) are awaited before the next one; a host cut off
// stays cut off in the background for a while (sometimes past HostDownAfter, so that the host is
// given up on) while other faults go on. Besides these, a partition on a schedule of its own
// (its own generator, so the random faults' schedule stays as it was): host33 cut off for
// longer than it takes to be given up on, 5-15 s into the run and then every 1-2 minutes, so
// that every run has its remote runs stop themselves, run again elsewhere and be fenced when
// host33 is back (issue 9). `calm()` ends every fault still in effect.

export type FaultKind =
  | 'supervisor kill -9'
  | 'actor crash'
  | 'redis-server kill -9'
  | 'sshd kill -9'
  | 'host cut off'
  | 'partition'
  | 'EC2 capacity error'
  | 'EC2 throttling'
  | 'node away';

export const FAULT_KINDS: readonly FaultKind[] = ['supervisor kill -9', 'actor crash', 'redis-server kill -9', 'sshd kill -9', 'host cut off', 'partition', 'EC2 capacity error', 'EC2 throttling', 'node away'];

const WEIGHTS: [FaultKind, number][] = [
  ['supervisor kill -9', 3],
  ['actor crash', 3],
  ['redis-server kill -9', 2],
  ['sshd kill -9', 2],
  ['host cut off', 1],
  ['EC2 capacity error', 1],
  ['EC2 throttling', 1],
];
/** With several nodes (`--nodes N`): one killed and kept away past NodeDownAfter now and then. */
const NODE_WEIGHTS: [FaultKind, number][] = [...WEIGHTS, ['node away', 1]];
/** NodeDownAfter of the run's config (world.ts), in ms. */
const NODE_DOWN_AFTER_MS = 10_000;

const ACTORS = ['manager', 'starter', 'fetcher'] as const;

export class FaultInjector {
  readonly counts = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, 0]));
  /** Faults the world did not recover from (a supervisor that would not start, say). */
  readonly errors: string[] = [];
  private cutOff: Promise<void> | null = null;
  /** A node killed and kept away past NodeDownAfter, back when this resolves. */
  private away: Promise<void> | null = null;
  private readonly healed = new AbortController();

  constructor(
    private readonly world: World,
    private readonly random: () => number,
    private readonly log: (text: string) => void,
    /** The partitions' own generator. */
    private readonly partitionRandom: () => number = random,
  ) {}

  async run(stop: StopSignal): Promise<void> {
    await Promise.all([this.randomFaults(stop), this.partitions(stop)]);
  }

  private async partitions(stop: StopSignal): Promise<void> {
    let wait = 5000 + this.partitionRandom() * 10_000;
    while (await stop.sleep(wait)) {
      // Well past what it takes to be given up on: supervisor restarts meanwhile (a new fetcher
      // needs a few seconds to find the host silent) put the give-up off.
      const ms = Math.round(GIVEN_UP_AFTER_MS + 10_000 + this.partitionRandom() * 10_000);
      wait = ms + 60_000 + this.partitionRandom() * 60_000;
      // A random cut-off in effect: this partition waits for it to end (then it is one).
      while (this.cutOff && !stop.stopped) await this.cutOff;
      if (stop.stopped) return;
      this.cut(ms);
      this.counts.set('partition', this.counts.get('partition')! + 1);
      this.log(`fault: partition (host33 cut off for ${ms}ms, past HostDownAfter)`);
    }
  }

  /** host33 cut off (nothing passes, nothing closes) for `ms`, in the background. */
  private cut(ms: number): void {
    this.world.proxy.cutOff();
    this.cutOff = sleep(ms, this.healed.signal).then(() => {
      this.world.proxy.restore();
      this.cutOff = null;
      this.log(`fault: host33 is reachable again after ${ms}ms`);
    });
  }

  private async randomFaults(stop: StopSignal): Promise<void> {
    while (await stop.sleep(1000 + this.random() * 3000)) {
      const kind = pick(this.random, this.world.nodes.length > 1 ? NODE_WEIGHTS : WEIGHTS);
      try {
        const what = await this.inject(kind);
        this.counts.set(kind, this.counts.get(kind)! + 1);
        this.log(`fault: ${kind}${what ? ` (${what})` : ''}`);
      } catch (err) {
        this.errors.push(`${kind}: ${errorMessage(err)}`);
        this.log(`fault: ${kind} FAILED: ${errorMessage(err)}`);
      }
    }
  }

  private async inject(kind: FaultKind): Promise<string> {
    const { ws, hosts, ec2 } = this.world;
    switch (kind) {
      case 'supervisor kill -9': {
        // With one node, the only one; with several, any that runs (a draw only then, so that a
        // one-node seed replays as before).
        const running = this.world.runningNodes;
        const node = running.length > 1 ? running[Math.floor(this.random() * running.length)] : running[0];
        if (!node) return 'no supervisor runs';
        await node.supervisor?.kill9();
        await sleep(this.random() * 1000);
        await this.world.startNode(node);
        return `${this.world.nodes.length > 1 ? `${node.name}, ` : ''}pid ${node.supervisor!.pid} now`;
      }
      case 'node away': {
        // Kept away past NodeDownAfter: what was granted to it and not started goes to the
        // others; its running local jobs wait for it and are picked up when it is back.
        const running = this.world.runningNodes;
        if (this.away || running.length < 2) return 'a node is away already';
        const node = running[Math.floor(this.random() * running.length)];
        const ms = Math.round(NODE_DOWN_AFTER_MS + 2000 + this.random() * 8000);
        await node.supervisor?.kill9();
        this.away = sleep(ms, this.healed.signal).then(async () => {
          try {
            await this.world.startNode(node);
            this.log(`fault: node ${node.name} is back after ${ms}ms`);
          } catch (err) {
            this.errors.push(`node away: ${node.name} would not start again: ${errorMessage(err)}`);
          }
          this.away = null;
        });
        return `${node.name} killed, away for ${ms}ms`;
      }
      case 'actor crash': {
        const actor = ACTORS[Math.floor(this.random() * ACTORS.length)];
        const result = await ws.cli('debug', 'crash-actor', actor);
        if (result.code !== 0) throw new Error(`jobmanager debug crash-actor ${actor} exited ${result.code}: ${result.stderr.trim()}`);
        return actor;
      }
      case 'redis-server kill -9': {
        const down = Math.round(this.random() * 3000);
        await ws.redis!.kill9();
        await sleep(down);
        await ws.redis!.restart();
        return `down ${down}ms`;
      }
      case 'sshd kill -9': {
        const host = hosts[Math.floor(this.random() * hosts.length)];
        const down = Math.round(this.random() * 3000);
        await host.killAll();
        await sleep(down);
        await host.restart();
        return `${host.name}, down ${down}ms`;
      }
      case 'host cut off': {
        if (this.cutOff) return 'host33 is cut off already';
        // Mostly short; one in three long enough for host33 to be given up on (and then come back).
        const ms = Math.round(this.random() < 0.33 ? GIVEN_UP_AFTER_MS + 2000 + this.random() * 10_000 : 1000 + this.random() * 10_000);
        this.cut(ms);
        return `host33 for ${ms}ms`;
      }
      case 'EC2 capacity error': {
        const times = 1 + Math.floor(this.random() * 6);
        ec2.failNext('RunInstances', 'InsufficientInstanceCapacity', times);
        return `next ${times} RunInstances`;
      }
      case 'EC2 throttling': {
        const action = (['RunInstances', 'DescribeInstances', 'TerminateInstances'] as const)[Math.floor(this.random() * 3)];
        const times = 1 + Math.floor(this.random() * 6);
        ec2.failNext(action, 'RequestLimitExceeded', times);
        return `next ${times} ${action}`;
      }
      case 'partition':
        throw new Error('partitions come on their own schedule (partitions())');
    }
  }

  /** Ends every fault still in effect: the host reachable again, no EC2 errors to come. */
  async calm(): Promise<void> {
    this.healed.abort();
    await this.cutOff;
    await this.away;
    this.world.ec2.clearFaults();
  }
}

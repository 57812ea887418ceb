import type { Redis } from 'ioredis';
import { FileLogger, type Logger } from '../util/log.js';

// With Redis Sentinel, replication is asynchronous: a master killed a moment after a write may
// take it along, and the replica promoted in its place never saw it. Most writes are then done
// again (every script is safe to replay; the manager routes and grants again). Some must not be
// lost, so, only when connected through Sentinels, each is confirmed with WAIT 1 (a replica has
// every write this connection made) before anything goes on from it:
//   - what a start depends on: a grant lost while its run started would be granted and started
//     again, a take from Granted_Queue lost would be taken again (the WAIT after the take covers
//     the grant before it in the replication stream), and a relaunch and markRunning likewise;
//   - a run's end (finishRun): the fetcher forgets the run's log once its end is recorded;
//   - what a person was told: new jobs (`queue` printed their ids), a cancel, a retry.
//
//   grant ──> Granted_Queue ──> take (starter) ──> WAIT 1 ──> launch ──> markRunning ──> WAIT 1
//
// The rule and its window (README, "When things fail"): a start goes ahead once a replica has
// its grant, or after REPLICA_WAIT_MS without one (a replica lagging or absent: then the master
// serves on alone rather than stop every job, and for the next UNCONFIRMED_PAUSE_MS nothing
// waits, so that a missing replica costs one wait, not one per write). Only a failover inside
// such an unconfirmed stretch can lose one of these writes, and so start a job again.

export const REPLICA_WAIT_MS = 1000;
const UNCONFIRMED_PAUSE_MS = 10_000;
const STDERR: Logger = new FileLogger(null, 'info', 'redis', true);

export class ReplicaWait {
  private pausedUntil = 0;
  private warned = false;

  constructor(private readonly log: Logger = STDERR) {}

  /**
   * WAIT 1 on `redis` (the connection that wrote): true when a replica has every write it made,
   * false when none confirmed in time. A lost connection throws (the writes' fate is unknown).
   */
  async confirm(redis: Redis, what: string): Promise<boolean> {
    if (Date.now() < this.pausedUntil) return false;
    const replicas = Number(await redis.call('WAIT', 1, REPLICA_WAIT_MS));
    if (replicas >= 1) {
      if (this.warned) this.log.info(`Redis: a replica confirms ${what} again`);
      this.warned = false;
      return true;
    }
    this.pausedUntil = Date.now() + UNCONFIRMED_PAUSE_MS;
    if (!this.warned) {
      this.log.warn(`Redis: no replica confirmed ${what} within ${REPLICA_WAIT_MS}ms; starts go on unconfirmed (a failover now could start a job again) and look again in ${UNCONFIRMED_PAUSE_MS / 1000}s`);
      this.warned = true;
    }
    return false;
  }
}

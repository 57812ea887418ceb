import type { Redis } from 'ioredis';
import { JobManagerError } from '../util/errors.js';
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

/**
 * The connection dropped between a write and its WAIT's reply: whether the write survived the
 * failover is unknown. (ioredis sends a WAIT cut short again on the new connection, where it
 * covers no write and would answer as if nothing were at stake: so drops are counted.)
 */
export class ReplicaUnconfirmedError extends JobManagerError {
  override readonly code = 'JM_REPLICA_UNCONFIRMED';
}

export class ReplicaWait {
  private pausedUntil = 0;
  private warned = false;
  private drops = 0;

  /** `redis`: the connection whose writes are confirmed (WAIT counts this connection's writes). */
  constructor(
    private readonly redis: Redis,
    private readonly log: Logger = STDERR,
  ) {
    redis.on('close', () => this.drops++);
  }

  /**
   * WAIT 1 after a write on the connection: true when a replica has every write it made, false
   * when none confirmed in time. Throws when the connection dropped meanwhile (the write's fate
   * is unknown): the caller does the write again or settles it.
   *
   * `mark`: a key to INCR first, after a write that a blocked command made. Redis 7.0 does not
   * count a write done when a blocked BLMPOP is served as the client's (its WAIT returned at
   * once, confirming nothing: found by spec/sentinel.spec.ts); a write of its own after it does,
   * and WAIT then covers everything before it in the replication stream.
   */
  async confirm(what: string, mark?: string): Promise<boolean> {
    if (Date.now() < this.pausedUntil) return false;
    const drops = this.drops;
    let replicas: number;
    try {
      if (mark) await this.redis.incr(mark);
      replicas = Number(await this.redis.call('WAIT', 1, REPLICA_WAIT_MS));
    } catch (err) {
      throw new ReplicaUnconfirmedError(`the connection to Redis dropped before a replica confirmed ${what}`, { cause: err });
    }
    if (this.drops !== drops) throw new ReplicaUnconfirmedError(`the connection to Redis dropped before a replica confirmed ${what}`);
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

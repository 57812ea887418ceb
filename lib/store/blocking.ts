import type { Redis } from 'ioredis';
import { createRedis, isConnectionLoss, isSentinelAddress } from './connect.js';
import { ReplicaUnconfirmedError, ReplicaWait } from './replica-wait.js';
import type { ActorName, Keys } from './keys.js';
import { parseEvents, type EventBatch, type XReadReply } from './events.js';
import { Scripts } from './scripts.js';
import type { IntakeEntry } from './types.js';
import { errorMessage } from '../util/errors.js';
import { FileLogger, type Logger } from '../util/log.js';
import type { StopSignal } from '../util/stop-signal.js';

// Blocking on Redis, done carefully (BullMQ's lessons, its issues #1658, #4479, #4585): blocking
// commands get a connection of their own, their timeout is capped at 5 s, and a watchdog
// reconnects if a call outlives its timeout (a blocking command can hang silently across a
// reconnect). Stop cuts a wait short by closing the connection.
//
// A failed wait is not "no work" in silence. Losing the connection (Redis restarting, a reconnect)
// is waited out quietly: commands queue until it is back. Redis refusing the command (NOSCRIPT,
// WRONGTYPE, NOAUTH...) does not mend by itself: it is logged once, with its reason, and the
// waits back off (up to 5 s) instead of spinning on the error; a success is logged as the end of it.
//
// Made by Store.blocking(log), it knows the deployment's keys and callers say what they wait for
// (takeGranted, waitForSignal, readEvents, takeControl).

const MAX_BLOCK_MS = 5000;
const MAX_BACKOFF_MS = 5000;
/** Where a connection made without a logger reports (a worker thread's stderr reaches the supervisor's). */
const STDERR: Logger = new FileLogger(null, 'info', 'redis', true);

export class BlockingConnection {
  private readonly redis: Redis;
  private closed = false;
  private failures = 0;
  private reported: string | null = null;
  private readonly replicaWait: ReplicaWait | null;
  private dropped = 0;
  private scripts: Scripts | null = null;

  constructor(
    url: string,
    private readonly log: Logger = STDERR,
    private readonly keys: Keys | null = null,
  ) {
    this.redis = createRedis(url, 'actor');
    this.replicaWait = isSentinelAddress(url) ? new ReplicaWait(this.redis, log) : null;
    this.redis.on('close', () => this.dropped++);
  }

  /**
   * How many times the connection has dropped. A pop whose reply the drop took was done all the
   * same (ioredis sends the command again after reconnecting: a second pop): its payloads are
   * taken and no one has them, so the starter looks for such runs after each drop.
   */
  get drops(): number {
    return this.dropped;
  }

  private get k(): Keys {
    if (!this.keys) throw new Error('this BlockingConnection was made without keys: make it with Store.blocking()');
    return this.keys;
  }

  /**
   * The starter's take: up to `max` launch payloads from Granted_Queue, oldest first. Through
   * Sentinels, a take is confirmed by a replica before it is returned (replica-wait.ts); when
   * the connection drops meanwhile, none is returned: whether the take (and the grant before
   * it) survived a failover is unknown, and the starter's look after a drop settles them.
   */
  async takeGranted(max: number, ms: number, stop: StopSignal): Promise<string[]> {
    const payloads = await this.popMany([this.k.grantedQueue], max, ms, stop, 'RIGHT');
    if (payloads.length === 0 || !this.replicaWait) return payloads;
    try {
      await this.replicaWait.confirm('a take from Granted_Queue', this.k.replicaMark);
      return payloads;
    } catch (err) {
      if (!(err instanceof ReplicaUnconfirmedError) && !isConnectionLoss(err) && !this.closed) throw err;
      this.dropped++;
      this.log.warn(`JobStarter: the connection to Redis dropped before a replica confirmed the take of ${payloads.length} run(s); they are settled as runs a starter left`);
      return [];
    }
  }

  /** Waits for a wake-up token on Signal:<actor>. True if one came. */
  waitForSignal(actor: ActorName, ms: number, stop: StopSignal): Promise<boolean> {
    return this.wait(this.signalKeys(actor), ms, stop);
  }

  /** An actor's wake-up lists: its node's own, then the one every node's actor of that name watches. */
  private signalKeys(actor: ActorName): string[] {
    return [this.k.nodeSignal(actor), this.k.signal(actor)];
  }

  /**
   * The manager's wait and its next read of Job_Queue in one round trip: the read (readIntake-2.lua)
   * is sent right behind the wait on this connection, so Redis runs it the moment the wait ends
   * (woken or timed out) and both replies come back together: a job queued on an idle manager
   * is read a round trip sooner (0.7-0.9 ms traced here, on two cores that the job's own `queue`
   * process keeps busy; less than the latency bench's whole milliseconds show). Between the two
   * goes the DEL of the tokens left: a job queued after the read leaves a token that wakes the
   * next wait (dropped after the read, it was lost, and so was a wake-up: `queue` of 1,000 jobs
   * in four shares had the manager route the first share, then wait its full idle time before
   * reading the rest). A lost connection reads as no entries: the manager waits again, and reads
   * what is there after.
   */
  async waitForIntake(ms: number, stop: StopSignal, max: number, fields: string[]): Promise<IntakeEntry[]> {
    // Defined first: commands sent in one turn share an automatic pipeline, made with the
    // commands defined when its first one is sent.
    this.scripts ??= new Scripts(this.redis, this.k);
    const keys = this.signalKeys('manager');
    const woken = this.popMany(keys, 1000, ms, stop);
    const dropped = this.redis.del(...keys);
    const read = this.scripts.readIntake(max, fields);
    dropped.catch(() => {}); // a DEL lost with the connection costs one extra turn, no more
    read.catch(() => {}); // awaited below, after the wait
    await woken;
    try {
      return await read;
    } catch (err) {
      if (stop.stopped || this.closed || isConnectionLoss(err)) return [];
      throw err;
    }
  }

  /** The supervisor's next Control command (`crash fetcher`), or null after `ms`. */
  async takeControl(ms: number, stop: StopSignal): Promise<string | null> {
    const [command] = await this.popMany([this.k.control], 1, ms, stop);
    return command ?? null;
  }

  /**
   * Job state changes from the Events stream after `after` (an entry id), waiting at most `ms`
   * for the first. A lost connection reads as none (the caller re-reads states now and then);
   * Redis refusing the read is thrown. `maxEvents`: entries after the one that reaches it are
   * left for the next read (an entry may stand for a batch of a sweep's jobs: events.ts).
   */
  async readEvents(after: string, count: number, ms: number, maxEvents = Infinity): Promise<EventBatch> {
    const blockMs = Math.max(1, Math.min(ms, MAX_BLOCK_MS));
    const watchdog = setTimeout(() => this.redis.disconnect(true), blockMs + 5000);
    try {
      const reply = (await this.redis.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.k.events, after)) as XReadReply;
      return parseEvents(reply, after, maxEvents);
    } catch (err) {
      if (this.closed || !isConnectionLoss(err)) throw err;
      return { lastId: after, events: [] };
    } finally {
      clearTimeout(watchdog);
    }
  }

  /**
   * Pops up to `count` entries from the first non-empty list of `keys` (BLMPOP), waiting at most
   * `ms`. Returns [] on timeout, stop or error (see the top of this file for errors).
   * @deprecated outside lib/store: use takeGranted, waitForSignal or takeControl.
   */
  async popMany(keys: string[], count: number, ms: number, stop: StopSignal, end: 'LEFT' | 'RIGHT' = 'LEFT'): Promise<string[]> {
    if (stop.stopped || this.closed) return [];
    const blockMs = Math.max(1, Math.min(ms, MAX_BLOCK_MS));
    const watchdog = setTimeout(() => this.redis.disconnect(true), blockMs + 5000);
    const onStop = () => this.redis.disconnect(false);
    stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      const reply = (await this.redis.call('BLMPOP', (blockMs / 1000).toFixed(3), keys.length, ...keys, end, 'COUNT', count)) as [string, string[]] | null;
      this.recovered(keys);
      return reply ? reply[1] : [];
    } catch (err) {
      await this.failed(err, keys, stop);
      return [];
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener('abort', onStop);
    }
  }

  /**
   * Waits for a wake-up token on any of `keys` (Signal:<actor> lists; all tokens are taken).
   * True if one came. Losing a token is harmless: the waiter looks again after `ms` anyway.
   * @deprecated outside lib/store: use waitForSignal.
   */
  async wait(keys: string[], ms: number, stop: StopSignal): Promise<boolean> {
    const tokens = await this.popMany(keys, 1000, ms, stop);
    if (tokens.length && keys.length > 1) {
      // A token left in another list would only make the next wait return at once. Not waited
      // for: the waiter's next command follows it on this connection, and a wake-up is not held
      // up by a round trip (a lost DEL costs one extra turn).
      this.redis.del(...keys).catch(() => {});
    }
    return tokens.length > 0;
  }

  private async failed(err: unknown, keys: string[], stop: StopSignal): Promise<void> {
    if (stop.stopped || this.closed) return;
    if (isConnectionLoss(err)) {
      await stop.sleep(50);
      return;
    }
    this.failures++;
    const reason = errorMessage(err);
    const delay = Math.min(100 * 2 ** (this.failures - 1), MAX_BACKOFF_MS);
    if (reason !== this.reported) {
      this.reported = reason;
      this.log.error(`Redis refused a blocking wait on ${keys.join(' ')}: ${reason}; waiting again with a backoff of up to ${MAX_BACKOFF_MS / 1000}s`);
    }
    await stop.sleep(delay);
  }

  private recovered(keys: string[]): void {
    if (this.failures === 0) return;
    if (this.reported) this.log.info(`Redis answers the blocking wait on ${keys.join(' ')} again`);
    this.failures = 0;
    this.reported = null;
  }

  close(): void {
    this.closed = true;
    this.redis.disconnect(false);
  }
}

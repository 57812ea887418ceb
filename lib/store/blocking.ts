import type { Redis } from 'ioredis';
import { createRedis } from './connect.js';
import type { StopSignal } from '../util/stop-signal.js';

// Blocking on Redis, done carefully (BullMQ's lessons, its issues #1658, #4479, #4585): blocking
// commands get a connection of their own, their timeout is capped at 5 s, and a watchdog
// reconnects if a call outlives its timeout (a blocking command can hang silently across a
// reconnect). Stop cuts a wait short by closing the connection.

const MAX_BLOCK_MS = 5000;

export class BlockingConnection {
  private readonly redis: Redis;
  private closed = false;

  constructor(url: string) {
    this.redis = createRedis(url, 'actor');
  }

  /**
   * Pops up to `count` entries from the first non-empty list of `keys` (BLMPOP), waiting at most
   * `ms`. Returns [] on timeout, stop or error.
   */
  async popMany(keys: string[], count: number, ms: number, stop: StopSignal, end: 'LEFT' | 'RIGHT' = 'LEFT'): Promise<string[]> {
    if (stop.stopped || this.closed) return [];
    const blockMs = Math.max(1, Math.min(ms, MAX_BLOCK_MS));
    const watchdog = setTimeout(() => this.redis.disconnect(true), blockMs + 5000);
    const onStop = () => this.redis.disconnect(false);
    stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      const reply = (await this.redis.call('BLMPOP', (blockMs / 1000).toFixed(3), keys.length, ...keys, end, 'COUNT', count)) as [string, string[]] | null;
      return reply ? reply[1] : [];
    } catch {
      if (!stop.stopped) await stop.sleep(50);
      return [];
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener('abort', onStop);
    }
  }

  /**
   * Waits for a wake-up token on any of `keys` (Signal:<actor> lists; all tokens are taken).
   * True if one came. Losing a token is harmless: the waiter looks again after `ms` anyway.
   */
  async wait(keys: string[], ms: number, stop: StopSignal): Promise<boolean> {
    const tokens = await this.popMany(keys, 1000, ms, stop);
    if (tokens.length && keys.length > 1) await this.redis.del(...keys).catch(() => {});
    return tokens.length > 0;
  }

  close(): void {
    this.closed = true;
    this.redis.disconnect(false);
  }
}

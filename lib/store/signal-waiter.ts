import type { Redis } from 'ioredis';
import { createRedis } from './connect.js';
import type { StopSignal } from '../stop-signal.js';

// Blocking on Redis, done carefully (BullMQ's lessons, its issues #1658, #4479, #4585): the
// blocking command gets a connection of its own, its timeout is capped at 5 s, and a watchdog
// reconnects if a call outlives its timeout (a blocking command can hang silently across a
// reconnect). Waiting is only ever a wake-up: the work itself is done by a Lua script, so a
// signal lost in a crash costs at most one timeout.

const MAX_BLOCK_MS = 5000;

export class SignalWaiter {
  private readonly redis: Redis;
  private closed = false;

  constructor(url: string) {
    this.redis = createRedis(url, 'actor');
  }

  /** Waits until one of `keys` has a token (all tokens taken), `ms` pass, or stop. True if signalled. */
  async wait(keys: string[], ms: number, stop: StopSignal): Promise<boolean> {
    if (stop.stopped || this.closed) return false;
    const blockMs = Math.max(1, Math.min(ms, MAX_BLOCK_MS));
    const watchdog = setTimeout(() => this.redis.disconnect(true), blockMs + 5000);
    const onStop = () => this.redis.disconnect(false);
    stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      const reply = await this.redis.call('BLMPOP', (blockMs / 1000).toFixed(3), keys.length, ...keys, 'LEFT', 'COUNT', 1000);
      if (reply) {
        // Drain the other keys too: one wake-up is enough for all of them.
        if (keys.length > 1) await this.redis.del(...keys);
        return true;
      }
      return false;
    } catch {
      if (!stop.stopped) await stop.sleep(50);
      return false;
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener('abort', onStop);
    }
  }

  close(): void {
    this.closed = true;
    this.redis.disconnect(false);
  }
}

import type { Config, LogLevel } from '../lib/config/config.js';
import type { LogFields } from '../lib/util/log.js';

// The one message protocol between the supervisor and its actors (worker threads). Every message
// is a member of a union keyed on `type`; receivers handle them in one switch, so a forgotten case
// is a compile error. Actors never talk to each other directly: `send` asks the supervisor to
// pass a message on, so a restarted actor is reachable at once.

export const ACTOR_NAMES = ['manager', 'starter', 'fetcher'] as const;
export type ActorName = (typeof ACTOR_NAMES)[number];

/** Supervisor → actor. */
export type ToActor =
  | { type: 'init'; config: Config; redisUrl: string }
  /** Finish the current step, close, and answer `stopped`. */
  | { type: 'stop' }
  /** Fault injection (chaos tests, `jobmanager debug crash-actor`): die at once. */
  | { type: 'crash' }
  /** Fetcher: the starter opened a new local run log (a new launcher): read it from now on. */
  | { type: 'runLog'; epoch: string; path: string }
  /** Starter: stop a Thread job's run (Timeout or cancel, decided by the fetcher); `reason` is recorded. */
  | { type: 'abort'; id: string; run: number; reason: string }
  /** Fetcher: the starter launched jobs on this host; follow its run log now if it does not yet. */
  | { type: 'launched'; host: string };

/** Actor → supervisor. */
export type FromActor =
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'log'; level: LogLevel; message: string; fields?: LogFields }
  | { type: 'send'; to: ActorName; message: ToActor };

export function assertNever(value: never): never {
  throw new Error(`unhandled message ${JSON.stringify(value)}`);
}

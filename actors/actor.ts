import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import type { Config } from '../lib/config/config.js';
import { CallbackLogger, type Logger } from '../lib/util/log.js';
import { StopSignal } from '../lib/util/stop-signal.js';
import { errorMessage } from '../lib/util/errors.js';
import { assertNever, type ActorName, type FromActor, type ToActor } from './protocol.js';

// What every actor thread shares: it waits for `init`, builds its actor, runs its loop, and on
// `stop` closes it (bounded) and answers `stopped`. An actor keeps no state that Redis does not
// also hold, so the supervisor can replace a dead one with a new one at any moment.

export interface ActorContext {
  name: ActorName;
  config: Config;
  redisUrl: string;
  log: Logger;
  stop: StopSignal;
  send(to: ActorName, message: ToActor): void;
}

export interface Actor {
  /** The main loop; returns when ctx.stop is set. */
  run(): Promise<void>;
  /** Messages beyond init/stop/crash. */
  handle(message: ToActor): void;
  /** Idempotent and bounded. */
  close(): Promise<void>;
}

const CLOSE_DEADLINE_MS = 5000;

export function runActor(name: ActorName, create: (ctx: ActorContext) => Promise<Actor>): void {
  const port = parentPort;
  if (!port) throw new Error(`${name} must run in a worker thread`);
  const post = (message: FromActor) => port.postMessage(message);
  let actor: Actor | null = null;
  let ctx: ActorContext | null = null;
  const early: ToActor[] = [];

  port.on('message', (message: ToActor) => {
    switch (message.type) {
      case 'init':
        void start(message);
        return;
      case 'stop':
        void stop();
        return;
      case 'crash':
        // A real crash: no cleanup, no answer. The supervisor sees the thread exit.
        process.exit(70);
      case 'runLog':
      case 'abort':
      case 'launched':
        if (actor) actor.handle(message);
        else early.push(message);
        return;
      default:
        assertNever(message);
    }
  });

  async function start(init: Extract<ToActor, { type: 'init' }>): Promise<void> {
    const log = new CallbackLogger(init.config.logLevel, (level, text, fields) => post({ type: 'log', level, message: text, fields }));
    ctx = { name, config: init.config, redisUrl: init.redisUrl, log, stop: new StopSignal(), send: (to, message) => post({ type: 'send', to, message }) };
    actor = await create(ctx);
    for (const message of early.splice(0)) actor.handle(message);
    post({ type: 'ready' });
    await actor.run();
  }

  async function stop(): Promise<void> {
    ctx?.stop.stop();
    if (actor) {
      const deadline = new Promise((resolve) => setTimeout(resolve, CLOSE_DEADLINE_MS).unref());
      await Promise.race([actor.close().catch((err) => ctx?.log.warn(`closing: ${errorMessage(err)}`)), deadline]);
      const elu = performance.eventLoopUtilization();
      ctx?.log.info(`${name}: busy ${Math.round(elu.active)}ms of ${Math.round(elu.active + elu.idle)}ms`);
    }
    post({ type: 'stopped' });
  }
}

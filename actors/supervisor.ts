import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Config } from '../lib/config/config.js';
import { CallbackLogger, FileLogger } from '../lib/util/log.js';
import { WebServer } from '../lib/web/server.js';
import { Store } from '../lib/store/store.js';
import { describeRedis } from '../lib/store/connect.js';
import type { BlockingConnection } from '../lib/store/blocking.js';
import { embeddedRedisUrl, ensureEmbeddedRedis, stopEmbeddedRedis } from '../lib/store/embedded-redis.js';
import { acquireStateLock, releaseStateLock } from '../lib/util/state-lock.js';
import { errorMessage, IllegalStateError } from '../lib/util/errors.js';
import { LEASE_RENEW_MS, NODE_LEASE_MS, NodeTakenError, type NodeLease } from '../lib/nodes/lease.js';
import { StopSignal } from '../lib/util/stop-signal.js';
import { ACTOR_NAMES, assertNever, type ActorName, type FromActor, type ToActor } from './protocol.js';

// The supervisor: one process, three actors, each in its own worker thread.
//
//            ┌──────────── supervisor (main thread) ─────────────┐
//            │ lock, embedded redis-server, heartbeat, restarts  │
//            └──────┬──────────────────┬──────────────────┬──────┘
//        messages   │                  │                  │
//            ┌──────┴─────┐     ┌──────┴─────┐     ┌──────┴──────┐
//            │  manager   │     │  starter   │     │  fetcher    │
//            │ Job_Queue  │     │ Granted_Q  │     │ Running_Q   │
//            │ -> grant   │     │ -> launch  │     │ -> finish   │
//            └──────┬─────┘     └──────┬─────┘     └──────┬──────┘
//                   └───────────── Redis (all durable state) ───┘
//
// Actors keep no state that Redis does not also hold, so when one dies the supervisor starts a
// new one (with a growing delay if it keeps dying) and work goes on. The supervisor routes the
// few messages actors send each other (`send`).

export type SupervisorStatus = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';
type ActorState = 'starting' | 'ready' | 'stopping' | 'restarting' | 'stopped';

interface ActorSlot {
  name: ActorName;
  worker: Worker | null;
  state: ActorState;
  restarts: number[];
  stopped: (() => void) | null;
}

export interface SupervisorOptions {
  /** Echo the log to stderr (foreground runs). */
  echo: boolean;
}

const HEARTBEAT_MS = LEASE_RENEW_MS;
/**
 * Each actor thread's young generation (V8's new space), in MB. Left to V8, it grows to 32 MB in
 * a thread that allocates steadily (the manager routing 100,000 jobs of a sweep) and stays that
 * size; an actor's garbage is a batch's worth of short-lived objects, which 8 MB collects as
 * well (no measurable change in the manager's CPU time): with them queued, the supervisor's
 * RSS is ~15 MB lower (bench sweep row).
 */
const ACTOR_YOUNG_GENERATION_MB = 8;
const STOP_DEADLINE_MS = 8000;

export class Supervisor {
  private status: SupervisorStatus = 'idle';
  private readonly log: FileLogger;
  private readonly actors = new Map<ActorName, ActorSlot>();
  private store: Store | null = null;
  private control: BlockingConnection | null = null;
  private redisUrl = '';
  private startedAt = Date.now();
  private readonly stop$ = new StopSignal();
  private stopping: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** The reason the last heartbeat was not recorded (logged once until one is). */
  private heartbeatFailure: string | null = null;
  private web: WebServer | null = null;
  /** This supervisor holds its node's lease (claimed at start). */
  private nodeClaimed = false;

  constructor(
    readonly config: Config,
    options: SupervisorOptions,
  ) {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    this.log = new FileLogger(join(config.stateDir, 'supervisor.log'), config.logLevel, 'supervisor', options.echo, { maxBytes: config.retention.logSizeBytes, keep: config.retention.logFiles });
  }

  get state(): SupervisorStatus {
    return this.status;
  }

  /** The web page's address (null: off, or it could not listen). */
  get webUrl(): string | null {
    return this.web?.url ?? null;
  }

  private setStatus(next: SupervisorStatus): void {
    this.log.debug(`supervisor: ${this.status} -> ${next}`);
    this.status = next;
  }

  async start(): Promise<void> {
    if (this.status !== 'idle') throw new IllegalStateError(`the supervisor cannot start: it is ${this.status}`);
    this.setStatus('starting');
    acquireStateLock(this.config.stateDir);
    try {
      if (this.config.redisUrl) {
        this.redisUrl = this.config.redisUrl;
      } else {
        const embedded = await ensureEmbeddedRedis(this.config.stateDir, (text) => this.log.info(text));
        this.redisUrl = embedded.url;
      }
      // No waiting for a Redis that is not there: `start` says so at once.
      this.store = await Store.open(this.redisUrl, this.config.deployment, 'actor', { waitMs: 0, node: this.config.nodeName });
      // The node is claimed before any actor runs: a second supervisor of the same name must
      // not touch the first one's local slots, queues or run logs.
      const holder = await this.claimNode('running');
      if (holder) throw new NodeTakenError(this.config.nodeName, holder);
      this.nodeClaimed = true;
      await this.adoptLegacy();
      this.log.info(`supervisor: pid ${process.pid}, node ${this.config.nodeName}, Redis ${describeRedis(this.redisUrl)}, deployment ${this.config.deployment}, state in ${this.config.stateDir}`);
      await Promise.all(ACTOR_NAMES.map((name) => this.spawnActor(name)));
      if (this.config.web.listen) {
        this.web = new WebServer(this.config, this.redisUrl, new CallbackLogger(this.config.logLevel, (level, text, fields) => this.log.write(level, 'web', text, fields)));
        await this.web.start();
      }
      this.startedAt = Date.now();
      this.setStatus('running');
      await this.heartbeat();
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
      void this.controlLoop();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Starts an actor's thread and resolves when it is ready. */
  private spawnActor(name: ActorName): Promise<void> {
    const slot = this.actors.get(name) ?? { name, worker: null, state: 'starting' as ActorState, restarts: [], stopped: null };
    this.actors.set(name, slot);
    slot.state = 'starting';
    const worker = new Worker(new URL(`./${name}.js`, import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: ACTOR_YOUNG_GENERATION_MB } });
    slot.worker = worker;
    return new Promise((resolve) => {
      worker.on('message', (message: FromActor) => {
        if (message.type === 'ready' && slot.state === 'starting') {
          slot.state = 'ready';
          resolve();
        }
        this.onMessage(slot, message);
      });
      worker.on('error', (err) => this.log.error(`${name}: ${err.stack ?? errorMessage(err)}`));
      worker.on('exit', (code) => {
        if (slot.worker !== worker) return;
        slot.worker = null;
        resolve();
        this.onActorExit(slot, code);
      });
      worker.postMessage({ type: 'init', config: this.config, redisUrl: this.redisUrl } satisfies ToActor);
    });
  }

  private onMessage(slot: ActorSlot, message: FromActor): void {
    switch (message.type) {
      case 'ready':
        return;
      case 'stopped':
        slot.stopped?.();
        return;
      case 'log':
        this.log.write(message.level, slot.name, message.message, message.fields);
        return;
      case 'send':
        this.actors.get(message.to)?.worker?.postMessage(message.message);
        return;
      default:
        assertNever(message);
    }
  }

  private onActorExit(slot: ActorSlot, code: number): void {
    if (this.status === 'stopping' || this.status === 'stopped' || slot.state === 'stopping') {
      slot.state = 'stopped';
      slot.stopped?.();
      return;
    }
    const now = Date.now();
    slot.restarts = slot.restarts.filter((t) => now - t < 60_000);
    slot.restarts.push(now);
    const delay = Math.min(100 * 2 ** (slot.restarts.length - 1), 5000);
    slot.state = 'restarting';
    this.web?.actorRestarted(slot.name);
    void this.heartbeat();
    this.log.error(`supervisor: the ${slot.name} actor exited (code ${code}); restarting it in ${delay}ms`);
    setTimeout(() => void this.restartActor(slot), delay).unref();
  }

  private async restartActor(slot: ActorSlot): Promise<void> {
    if (this.status !== 'running' && this.status !== 'starting') return;
    try {
      await this.spawnActor(slot.name);
      this.log.info(`supervisor: the ${slot.name} actor is back`);
      void this.heartbeat();
    } catch (err) {
      this.log.error(`supervisor: restarting ${slot.name} failed: ${errorMessage(err)}`);
      setTimeout(() => void this.restartActor(slot), 1000).unref();
    }
  }

  /** Fault injection and actor-level commands pushed to the Control list (`jobmanager debug`). */
  private async controlLoop(): Promise<void> {
    // Its errors are waited out (a lost connection) or logged once and backed off (see blocking.ts).
    this.control = this.store!.blocking(this.log);
    while (!this.stop$.stopped) {
      const command = await this.control.takeControl(5000, this.stop$);
      if (!command) continue;
      const [verb, target] = command.split(' ');
      const slot = this.actors.get(target as ActorName);
      if (verb === 'crash' && slot?.worker) {
        this.log.warn(`supervisor: crashing the ${target} actor on request`);
        slot.worker.postMessage({ type: 'crash' } satisfies ToActor);
      }
    }
  }

  /** Claims, renews or (stopped) lets go of this supervisor's node; returns who holds it instead (null: ours). */
  private claimNode(status: NodeLease['status']): Promise<NodeLease | null> {
    return this.store!.claimNode({ host: hostname(), pid: process.pid, stateDir: this.config.stateDir, localMaxJobs: this.config.localMaxJobs, status }, NODE_LEASE_MS);
  }

  /**
   * A deployment upgraded from one supervisor (before nodes) has its local slots, queues and run
   * logs under keys without a node: the node started on that supervisor's machine and state
   * directory adopts them (its run logs are on that disk), or the first node at all when no
   * record says where it ran. Another node leaves them and says where to start.
   */
  private async adoptLegacy(): Promise<void> {
    const store = this.store!;
    if (!(await store.hasLegacyKeys())) return;
    const old = await store.legacySupervisor();
    if (old && (old.host !== hostname() || old.stateDir !== this.config.stateDir)) {
      this.log.warn(`supervisor: the local jobs of the supervisor this deployment ran before nodes (${old.host}, ${old.stateDir}) wait for a node started there, which adopts them`);
      return;
    }
    const adopted = await store.adoptLegacy();
    this.log.info(`supervisor: node ${this.config.nodeName} adopted the local slots, queues and run logs of the one supervisor before nodes (${adopted} job entries)`);
  }

  private async heartbeat(): Promise<void> {
    if (!this.store) return;
    if (this.status === 'running') {
      try {
        const holder = await this.claimNode('running');
        if (holder) {
          // Our lease lapsed (this process was frozen, or Redis away) and another supervisor took
          // the name: two supervisors must never act as one node.
          this.log.error(`supervisor: ${new NodeTakenError(this.config.nodeName, holder).message}; stopping`);
          void this.stop();
          return;
        }
      } catch {
        // Redis away: told below, by the record's write.
      }
    }
    const actors: Record<string, { state: string; restarts: number }> = {};
    for (const [name, slot] of this.actors) actors[name] = { state: slot.state, restarts: slot.restarts.length };
    try {
      await this.store.saveSupervisor({
        pid: process.pid, host: hostname(), startedAt: this.startedAt, heartbeatAt: Date.now(), status: this.status,
        stateDir: this.config.stateDir, actors, web: this.web?.url ?? '',
      });
      this.heartbeatFailure = null;
    } catch (err) {
      // Redis away (the client retries, and the next beat tells) or refusing the write: said once.
      if (this.heartbeatFailure !== errorMessage(err)) this.log.warn(`supervisor: heartbeat not recorded: ${errorMessage(err)}`);
      this.heartbeatFailure = errorMessage(err);
    }
  }

  /** Stops the actors (each finishes its step), then the embedded Redis. Idempotent, bounded. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.setStatus('stopping');
    this.stop$.stop();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.control?.close();
    await this.web?.close();
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, STOP_DEADLINE_MS).unref());
    await Promise.race([Promise.all([...this.actors.values()].map((slot) => this.stopActor(slot))), deadline]);
    for (const slot of this.actors.values()) await slot.worker?.terminate();
    if (this.store) {
      // Only a node this supervisor held is marked stopped (not one a refused start found taken).
      if (this.nodeClaimed) await this.store.markSupervisorStopped(Date.now()).catch((err: unknown) => this.log.warn(`supervisor: could not record that it stopped: ${errorMessage(err)}`));
      if (this.nodeClaimed) await this.claimNode('stopped').catch((err: unknown) => this.log.warn(`supervisor: could not record that node ${this.config.nodeName} stopped: ${errorMessage(err)}`));
      await this.store.close();
    }
    // The embedded redis-server stops with the supervisor (a command that needs it later starts
    // it again for itself); it writes its append-only file as it goes.
    if (!this.config.redisUrl && this.redisUrl === embeddedRedisUrl(this.config.stateDir)) {
      if (!(await stopEmbeddedRedis(this.config.stateDir, true))) this.log.warn('supervisor: the embedded redis-server did not stop');
    }
    releaseStateLock(this.config.stateDir);
    this.setStatus('stopped');
    this.log.info('supervisor: stopped; running jobs go on and are picked up at the next start');
    this.log.close();
  }

  private stopActor(slot: ActorSlot): Promise<void> {
    if (!slot.worker) return Promise.resolve();
    slot.state = 'stopping';
    return new Promise((resolve) => {
      slot.stopped = resolve;
      slot.worker!.postMessage({ type: 'stop' } satisfies ToActor);
    });
  }
}

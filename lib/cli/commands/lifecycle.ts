import { spawn } from 'node:child_process';
import { nodeRows } from '../../nodes/node-rows.js';
import { nodeLocation } from '../../store/keys.js';
import { nodesTable } from './nodes.js';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { readConfig, openStore } from '../context.js';
import { lockOwner } from '../../util/state-lock.js';
import { embeddedRedisSocket, pingSocket, stopEmbeddedRedis } from '../../store/embedded-redis.js';
import { describeRedis } from '../../store/connect.js';
import { age, table } from '../output.js';
import { Progress } from '../progress.js';
import { errorMessage, JobManagerError } from '../../util/errors.js';
import type { ActorName } from '../../store/keys.js';
import { EXIT, type CommandArgs } from './types.js';
import { HostRegistry } from '../../ssh/hosts.js';
import type { Config } from '../../config/config.js';
import { sleep } from '../../util/stop-signal.js';
import { processAlive } from '../../util/process.js';
import { loginLink } from '../../web/auth.js';
import { describeEnded, endIdleInstances } from '../../backends/ec2/ending.js';

// The supervisor's lifecycle: start (foreground, or --detach), stop, restart, status.

export async function startCommand(args: CommandArgs): Promise<number> {
  const config = readConfig(args.config);
  const owner = lockOwner(config.stateDir);
  if (owner !== null) {
    args.out.error(`a supervisor is already running (pid ${owner}) with state in ${config.stateDir}`);
    return EXIT.unavailable;
  }
  return args.detach ? startDetached(config, args) : runForeground(config, args);
}

async function runForeground(config: Config, args: CommandArgs): Promise<number> {
  const detachedChild = process.env.JM_DETACHED_CHILD === '1' && typeof process.send === 'function';
  const supervisor = await args.runtime.createSupervisor(config, { echo: !detachedChild });
  try {
    await supervisor.start();
  } catch (err) {
    if (detachedChild) process.send!({ error: errorMessage(err) });
    throw err;
  }
  if (detachedChild) {
    process.send!({ ready: process.pid, web: supervisor.webUrl });
    process.disconnect();
  } else {
    args.out.error(`JobManager supervisor running (pid ${process.pid}); log: ${join(config.stateDir, 'supervisor.log')}`);
    if (supervisor.webUrl) args.out.error(webLine(config, supervisor.webUrl));
    args.out.error('Ctrl-C stops it; running jobs go on and are picked up at the next start.');
  }
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = () => {
      if (++signals > 1) process.exit(130); // a second Ctrl-C: leave at once
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await supervisor.stop();
  return EXIT.ok;
}

async function startDetached(config: Config, args: CommandArgs): Promise<number> {
  const logFile = join(config.stateDir, 'supervisor.out');
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [args.runtime.entry, 'start', ...(args.config ? ['--config', args.config] : [])], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, JM_DETACHED_CHILD: '1' },
  });
  closeSync(fd);
  const reply = await new Promise<{ ready?: number; web?: string | null; error?: string; exited?: number | null }>((resolve) => {
    child.once('message', (message: { ready?: number; web?: string | null; error?: string }) => resolve(message));
    child.once('exit', (code) => resolve({ exited: code }));
  });
  child.unref();
  if (child.connected) child.disconnect();
  if (reply.ready) {
    args.out.error(`JobManager supervisor started (pid ${reply.ready}); log: ${join(config.stateDir, 'supervisor.log')}`);
    if (reply.web) args.out.error(webLine(config, reply.web));
    return EXIT.ok;
  }
  args.out.error(`the supervisor did not start: ${reply.error ?? `it exited with code ${reply.exited}; see ${logFile}`}`);
  return EXIT.unavailable;
}

export async function stopCommand(args: CommandArgs): Promise<number> {
  const config = readConfig(args.config);
  const stopped = await stopSupervisor(config, args);
  // With the supervisor gone (no provisioner to launch more), idle EC2 instances end now.
  if (stopped !== false) await endInstances(config, args);
  if (stopped === null) {
    if (!config.redisUrl && (await pingSocket(embeddedRedisSocket(config.stateDir)))) {
      await stopEmbeddedRedis(config.stateDir, true);
      args.out.error('no supervisor was running; stopped the embedded redis-server');
    } else {
      args.out.error('no supervisor is running');
    }
    return EXIT.ok;
  }
  return stopped ? EXIT.ok : EXIT.unavailable;
}

/** Terminates idle instances; says which busy ones are left, and why. */
async function endInstances(config: Config, args: CommandArgs): Promise<void> {
  // Redis is asked (the embedded one started for it, if need be) only where EC2 is set up.
  if (!config.ec2.imageId && !config.redisUrl && !(await pingSocket(embeddedRedisSocket(config.stateDir)))) return;
  const handle = await openStore(config);
  try {
    // Another node that runs keeps the fleet: it takes the EC2 lease and ends idle instances itself.
    const others = (await nodeRows(handle.store, config.nodeDownAfterMs)).filter((n) => n.name !== config.nodeName && n.lease === 'up');
    if (others.length) {
      args.out.error(`EC2 instances left to node${others.length > 1 ? 's' : ''} ${others.map((n) => n.name).join(', ')}, which still run${others.length > 1 ? '' : 's'} (the EC2 lease passes to one of them)`);
      return;
    }
    for (const line of describeEnded(await endIdleInstances(config, handle.store))) args.out.error(line);
  } catch (err) {
    args.out.error(`could not end the EC2 instances: ${errorMessage(err)}`);
  } finally {
    await handle.release();
  }
}

/** null: none was running; true: stopped; false: it did not stop in time. */
async function stopSupervisor(config: Config, args: CommandArgs): Promise<boolean | null> {
  const pid = lockOwner(config.stateDir);
  if (pid === null) return null;
  process.kill(pid, 'SIGTERM');
  const progress = new Progress({ enabled: !args.out.json, bar: false });
  const started = Date.now();
  progress.update(0, 1, `stopping the supervisor (pid ${pid})…`);
  while (processAlive(pid) && Date.now() - started < 30_000) await sleep(50);
  progress.done();
  if (processAlive(pid)) {
    args.out.error(`the supervisor (pid ${pid}) did not stop within 30s; \`kill -9 ${pid}\` is safe: nothing is lost`);
    return false;
  }
  args.out.error(`stopped the supervisor (pid ${pid}); running jobs go on and are picked up at the next start`);
  return true;
}

export async function restartCommand(args: CommandArgs): Promise<number> {
  const config = readConfig(args.config);
  if ((await stopSupervisor(config, args)) === false) return EXIT.unavailable;
  return startDetached(config, args);
}

export async function statusCommand(args: CommandArgs): Promise<number> {
  const { out } = args;
  const config = readConfig(args.config);
  const pid = lockOwner(config.stateDir);
  const redisText = config.redisUrl ? describeRedis(config.redisUrl) : `embedded (${embeddedRedisSocket(config.stateDir)})`;
  if (pid === null && !config.redisUrl && !(await pingSocket(embeddedRedisSocket(config.stateDir)))) {
    if (out.json) out.data({ supervisor: null, redis: { address: redisText, reachable: false } });
    else out.line(`supervisor  not running (start it with \`jobmanager start\`)\nredis       ${redisText}, not running`);
    return EXIT.unavailable;
  }
  let handle;
  try {
    handle = await openStore(config);
  } catch (err) {
    if (out.json) out.data({ supervisor: pid, redis: { address: redisText, reachable: false, error: errorMessage(err) } });
    else out.line(`supervisor  ${pid ? `pid ${pid}` : 'not running'}\nredis       ${redisText}: ${errorMessage(err)}`);
    return EXIT.unavailable;
  }
  try {
    const { store } = handle;
    const info = (await store.supervisorRecord()) ?? {};
    const registry = new HostRegistry(config, store);
    await registry.refresh(true);
    // Every location, hosts that are down included (poolsFor leaves those out); `any` has no
    // slots of its own (its jobs take a host's).
    // Local slots are each node's (local:<node>); `local` is the queue of local jobs that any
    // node may run, with no slots of its own.
    const nodes = await nodeRows(store, config.nodeDownAfterMs);
    const pools: { name: string; limit: number | null }[] = [
      { name: 'local', limit: null },
      ...nodes.map((n) => ({ name: nodeLocation(n.name), limit: n.slots.total })),
      ...registry.all().map((h) => ({ name: `host:${h.name}`, limit: h.slots })),
    ];
    if (registry.all().some((h) => !h.adhoc)) pools.push({ name: 'any', limit: null });
    const depths = await store.queueDepths(pools.map((p) => p.name));
    const { Job_Queue: intake, Granted_Queue: granted, Running_Queue: running, Delayed: delayed } = depths;
    const poolRows = pools.map((p, i) => ({ location: p.name, waiting: depths.locations[i].waiting, used: p.limit === null ? null : depths.locations[i].used, slots: p.limit }));
    const alive = pid !== null && info.pid === pid && info.status !== 'stopped';
    const actors = info.actors ?? {};
    const heartbeat = info.heartbeatAt ?? null;
    if (out.json) {
      out.data({
        supervisor: alive ? { pid, host: info.host, startedAt: info.startedAt, heartbeatAt: heartbeat, actors, web: info.web ? { url: info.web, token: config.web.token !== null } : null } : null,
        redis: { address: redisText, reachable: true },
        queues: { Job_Queue: intake, Granted_Queue: granted, Running_Queue: running, Delayed: delayed },
        locations: poolRows,
        node: config.nodeName,
        nodes,
      });
      return alive ? EXIT.ok : EXIT.unavailable;
    }
    const stale = heartbeat !== null && Date.now() - heartbeat > 10_000;
    out.line(`supervisor  ${alive ? `running (node ${config.nodeName}), pid ${pid} on ${info.host}, up ${age(info.startedAt ?? null)}${stale ? `, NOT RESPONDING (last heartbeat ${age(heartbeat)} ago)` : ''}` : 'not running (start it with `jobmanager start`)'}`);
    if (alive) out.line(`actors      ${Object.entries(actors).map(([name, a]) => `${name} ${a.state}${a.restarts ? ` (${a.restarts} restarts in the last minute)` : ''}`).join(' · ')}`);
    if (alive && info.web) out.line(webLine(config, info.web, true));
    out.line(`redis       ${redisText}`);
    out.line(`queues      Job_Queue ${intake} · Granted_Queue ${granted} · Running_Queue ${running} · waiting to retry ${delayed}`);
    out.line('');
    out.line(table(['LOCATION', 'WAITING', 'SLOTS USED'], poolRows.map((p) => [p.location, p.waiting, p.slots === null ? '-' : `${p.used}/${p.slots}`])));
    if (nodes.length) {
      out.line('');
      out.line(nodesTable(nodes));
    }
    return alive ? EXIT.ok : EXIT.unavailable;
  } finally {
    await handle.release();
  }
}

/**
 * The web page's address; with Web.Token, and when `login` (status, which a person runs on the
 * supervisor's machine), a one-time login link: it is made here from the config's token, never
 * stored, logged or put in --json.
 */
function webLine(config: Config, url: string, login = false): string {
  if (config.web.token === null) return `web         ${url}`;
  return login ? `web         ${url} (one-time login link, valid 15 minutes: ${loginLink(url, config.web.token)})` : `web         ${url} (needs Web.Token: \`jobmanager status\` prints a login link)`;
}

/** `jobmanager debug crash-actor NAME`: fault injection for chaos tests. */
export async function debugCommand(args: CommandArgs): Promise<number> {
  const [verb, target] = args.positionals;
  if (verb !== 'crash-actor' || !['manager', 'starter', 'fetcher'].includes(target)) {
    args.out.error('usage: jobmanager debug crash-actor manager|starter|fetcher');
    return EXIT.usage;
  }
  const handle = await openStore(readConfig(args.config));
  try {
    await handle.store.requestActorCrash(target as ActorName);
    return EXIT.ok;
  } finally {
    await handle.release();
  }
}

export function describeError(err: unknown): string {
  return err instanceof JobManagerError ? err.message : errorMessage(err);
}

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config/config.js';
import { ConfigError, errorMessage } from '../util/errors.js';
import { parseRedisAddress, type RedisAddress } from './redis-address.js';

// One place that turns a Redis address into an ioredis connection. Two kinds:
//  - 'actor': waits out a Redis restart (commands queue and are retried when it is back), since
//    an actor must keep going through `kill -9` of redis-server;
//  - 'cli': fails fast with a clear message, since a person is waiting.
// Blocking commands get a connection of their own (see BlockingConnection).
//
// The address may name one server, the master behind Redis Sentinels, or a Redis Cluster
// (redis-address.ts). ioredis does the rest: with Sentinels it asks them for the master at each
// (re)connect, so a failover looks like a Redis restart; a Cluster client is handed out typed as
// a Redis, since every key of a deployment is in one hash slot (keys.ts) and every command the
// store sends works on it alike (SCAN aside: see Store.hostsHoldingSlots).

export type ConnectionRole = 'actor' | 'cli';

/** How long to wait before the `times`th reconnect; null: give up (a person is waiting). */
function retryDelay(role: ConnectionRole): (times: number) => number | null {
  return role === 'actor' ? (times) => Math.min(50 * times, 1000) : (times) => (times > 3 ? null : 100 * times);
}

function commonOptions(role: ConnectionRole): RedisOptions {
  return {
    lazyConnect: true,
    enableAutoPipelining: true,
    connectionName: `jobmanager-${role}`,
    ...(role === 'actor' ? { maxRetriesPerRequest: null } : { maxRetriesPerRequest: 1, connectTimeout: 3000 }),
    retryStrategy: retryDelay(role),
  };
}

export function redisOptions(url: string, role: ConnectionRole): RedisOptions {
  const address = parseRedisAddress(url);
  if ('problem' in address) throw new ConfigError('Redis.Url', null, address.problem);
  if (address.kind === 'sentinel') return sentinelOptions(address, role);
  if (address.kind === 'cluster') throw new Error('a Redis Cluster address has no RedisOptions: use createRedis');
  const common = commonOptions(role);
  if (url.startsWith('unix://')) return { ...common, path: url.slice('unix://'.length) };
  const parsed = new URL(url);
  // An IPv6 address comes in brackets ([::1]), which neither the socket nor TLS wants.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const options: RedisOptions = {
    ...common,
    host,
    port: parsed.port ? Number(parsed.port) : 6379,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') {
    const fromUrl = parsed.searchParams.get('ca');
    const ca = fromUrl ?? process.env.JM_REDIS_CA ?? null;
    // SNI takes host names only: Node warns (DEP0123) on stderr, in every command, when it is
    // given an address. The certificate is checked against the address all the same.
    options.tls = {
      ...(ca ? { ca: readCa(ca, fromUrl !== null) } : {}),
      ...(isIP(host) ? {} : { servername: host }),
    };
  }
  return options;
}

function sentinelOptions(address: Extract<RedisAddress, { kind: 'sentinel' }>, role: ConnectionRole): RedisOptions {
  return {
    ...commonOptions(role),
    sentinels: address.sentinels,
    name: address.name,
    db: address.db,
    ...(address.username ? { username: address.username } : {}),
    ...(address.password ? { password: address.password } : {}),
    sentinelRetryStrategy: retryDelay(role),
    // Told of +switch-master by the Sentinels, rather than only when the old master's socket
    // closes (a master cut off by the network, not killed, may keep it open for long).
    failoverDetector: true,
    // An old master back as a replica answers writes with READONLY: ask the Sentinels again and
    // send the command to the master they name. Nothing ran (a script that writes is refused on a
    // replica before it starts), so sending it again is safe.
    reconnectOnError: (err) => (/^READONLY\b/.test(err.message) ? 2 : false),
  };
}

function clusterOptions(address: Extract<RedisAddress, { kind: 'cluster' }>, role: ConnectionRole): ClusterOptions {
  const { lazyConnect, enableAutoPipelining, retryStrategy: _perNode, ...perNode } = commonOptions(role);
  return {
    lazyConnect,
    enableAutoPipelining,
    clusterRetryStrategy: retryDelay(role),
    // A failover in the cluster answers CLUSTERDOWN or TRYAGAIN for a moment: wait it out.
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    redisOptions: {
      ...perNode,
      ...(address.username ? { username: address.username } : {}),
      ...(address.password ? { password: address.password } : {}),
    },
  };
}

export function createRedis(url: string, role: ConnectionRole): Redis {
  const address = parseRedisAddress(url);
  // The Cluster client answers the same commands (the store's keys share one slot); it is typed
  // as a Redis so that the store has one kind of connection to hold.
  const redis = 'kind' in address && address.kind === 'cluster'
    ? (new Cluster(address.nodes, clusterOptions(address, role)) as unknown as Redis)
    : new Redis(redisOptions(url, role));
  // ioredis reports every failed reconnect as an 'error' event; the store logs connection state
  // itself, so these must not become unhandled errors. The last one is kept: when the handshake
  // fails (a wrong password, a certificate that does not verify), connect() rejects with only
  // "Connection is closed." and the reason was in that event (found by spec/security.spec.ts).
  let lastError: Error | null = null;
  redis.on('error', (err: Error) => {
    lastError = err;
  });
  const connect = redis.connect.bind(redis);
  redis.connect = () => connect().catch((err: unknown) => {
    throw lastError && /Connection is closed/.test(errorMessage(err)) ? explainConnectError(lastError) : err;
  });
  return redis;
}

const CERTIFICATE_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/;

/** Why connecting failed, as a person can act on it (never with the password: Redis does not echo it). */
function explainConnectError(err: Error & { code?: string }): Error {
  const text = err.message;
  if (/WRONGPASS|invalid password|invalid username-password/i.test(text)) return new Error('Redis refused the user name or password in the URL (WRONGPASS)');
  if (/NOAUTH|Authentication required/i.test(text)) return new Error('Redis wants a password: give it in the URL (rediss://:PASSWORD@host:port/)');
  if (err.code && CERTIFICATE_CODES.test(err.code)) {
    return new Error(`its TLS certificate does not verify (${err.code}: ${text}); give the CA that signed it with ?ca=FILE in the URL or JM_REDIS_CA`);
  }
  if (/wrong version number|packet length too long|unknown protocol/i.test(text)) return new Error(`it does not speak TLS there (${text}); rediss:// needs Redis's TLS port, redis:// is for a plain one`);
  return err;
}

export function describeRedis(url: string): string {
  return url.startsWith('unix://') ? url.slice('unix://'.length) : redactUrl(url);
}

/** Whether the address names a master behind Sentinels (then starts wait for a replica: Store.confirmReplicated). */
export function isSentinelAddress(url: string): boolean {
  const address = parseRedisAddress(url);
  return 'kind' in address && address.kind === 'sentinel';
}

export function isClusterAddress(url: string): boolean {
  const address = parseRedisAddress(url);
  return 'kind' in address && address.kind === 'cluster';
}

function readCa(path: string, fromUrl: boolean): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    // A ConfigError (exit code 2), not a crash of the command (found by spec/security.spec.ts).
    const why = `cannot read the CA certificate ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
    throw fromUrl ? new ConfigError('Redis.Url', 'ca', why) : new ConfigError('environment', 'JM_REDIS_CA', why);
  }
}

/** Replies Redis gives while it cannot serve yet (loading its append-only file, a failover). */
const TRANSIENT_REPLIES = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|READONLY)\b/;

/**
 * Whether an error is the connection's (Redis away, restarting, a reconnect cutting a call
 * short), to be waited out, rather than Redis refusing the command (NOSCRIPT, WRONGTYPE, NOAUTH,
 * a wrong argument), which waiting does not fix and someone must be told about.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return TRANSIENT_REPLIES.test(err.message);
  if (['AbortError', 'InterruptError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError', 'ReplicaUnconfirmedError'].includes(err.name)) return true;
  return typeof (err as NodeJS.ErrnoException).code === 'string'
    || /Connection is closed|Stream isn't writeable|connect ETIMEDOUT|Command timed out|All sentinels are unreachable|Failed to refresh slots cache|None of startup nodes is available/.test(err.message);
}

import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config/config.js';

// One place that turns a Redis address into an ioredis connection. Two kinds:
//  - 'actor': waits out a Redis restart (commands queue and are retried when it is back), since
//    an actor must keep going through `kill -9` of redis-server;
//  - 'cli': fails fast with a clear message, since a person is waiting.
// Blocking commands get a connection of their own (see BlockingConnection).

export type ConnectionRole = 'actor' | 'cli';

export function redisOptions(url: string, role: ConnectionRole): RedisOptions {
  const common: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: true,
    connectionName: `jobmanager-${role}`,
    ...(role === 'actor'
      ? { maxRetriesPerRequest: null, retryStrategy: (times: number) => Math.min(50 * times, 1000) }
      : { maxRetriesPerRequest: 1, connectTimeout: 3000, retryStrategy: (times: number) => (times > 3 ? null : 100 * times) }),
  };
  if (url.startsWith('unix://')) return { ...common, path: url.slice('unix://'.length) };
  const parsed = new URL(url);
  const options: RedisOptions = {
    ...common,
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 6379,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') {
    const ca = parsed.searchParams.get('ca') ?? process.env.JM_REDIS_CA ?? undefined;
    options.tls = ca ? { ca: readCa(ca), servername: parsed.hostname } : { servername: parsed.hostname };
  }
  return options;
}

export function createRedis(url: string, role: ConnectionRole): Redis {
  const redis = new Redis(redisOptions(url, role));
  // ioredis reports every failed reconnect as an 'error' event; the store logs connection state
  // itself, so these must not become unhandled errors.
  redis.on('error', () => {});
  return redis;
}

export function describeRedis(url: string): string {
  return url.startsWith('unix://') ? url.slice('unix://'.length) : redactUrl(url);
}

function readCa(path: string): Buffer {
  return readFileSync(path);
}

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { MissingProgramError, RedisUnavailableError } from '../util/errors.js';
import { sleep } from '../util/stop-signal.js';

// The embedded default: with no Redis address configured, JobManager runs its own redis-server
// under StateDir/redis: unix socket only (no TCP port), socket mode 0700 in a 0700 directory,
// append-only file on (so a kill -9 of Redis loses nothing it acknowledged), no RDB snapshots.
// It runs in its own session, so it outlives a supervisor that is killed; the next supervisor
// (or command) finds it by its socket.

const SOCKET_PATH_MAX = 100; // sun_path is 108 bytes; keep a margin

export function embeddedRedisDir(stateDir: string): string {
  return join(stateDir, 'redis');
}

export function embeddedRedisSocket(stateDir: string): string {
  return join(embeddedRedisDir(stateDir), 'redis.sock');
}

export function embeddedRedisUrl(stateDir: string): string {
  return `unix://${embeddedRedisSocket(stateDir)}`;
}

export async function pingSocket(socket: string): Promise<boolean> {
  return existsSync(socket) && answersPing({ path: socket });
}

/** Whether a redis-server answers PING at this address now (one try, no retries). */
export async function answersPing(options: RedisOptions): Promise<boolean> {
  const redis = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

export interface EmbeddedRedis {
  url: string;
  /** This call started it (false: it was already running). */
  started: boolean;
}

/** Finds the embedded redis-server, starting it if it is not running. */
export async function ensureEmbeddedRedis(stateDir: string, onProgress?: (text: string) => void): Promise<EmbeddedRedis> {
  const dir = embeddedRedisDir(stateDir);
  const socket = embeddedRedisSocket(stateDir);
  const url = embeddedRedisUrl(stateDir);
  if (await pingSocket(socket)) return { url, started: false };
  if (socket.length > SOCKET_PATH_MAX) {
    throw new RedisUnavailableError(`the state directory ${stateDir} is too deep for a unix socket (${socket.length} > ${SOCKET_PATH_MAX} characters); set StateDir (or JM_STATE_DIR) to a shorter path`);
  }
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (probe.error) {
    throw new MissingProgramError('redis-server was not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server), or set Redis.Url in the config (or JM_REDIS_URL) to a Redis you run');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'start.lock');
  const deadline = Date.now() + 20_000;
  let announced = false;
  while (Date.now() < deadline) {
    if (takeStartLock(lock)) {
      try {
        if (await pingSocket(socket)) return { url, started: false };
        onProgress?.(`starting redis-server (data in ${dir})`);
        await startRedisServer(dir, socket, deadline);
        return { url, started: true };
      } finally {
        try {
          unlinkSync(lock);
        } catch {
          // gone
        }
      }
    }
    // Another process is starting it: wait for the socket.
    if (!announced) onProgress?.('waiting for redis-server started by another jobmanager command');
    announced = true;
    if (await pingSocket(socket)) return { url, started: false };
    await sleep(50);
  }
  throw new RedisUnavailableError(`redis-server did not come up within 20s; see ${join(dir, 'redis.log')}`);
}

function takeStartLock(lock: string): boolean {
  try {
    const fd = openSync(lock, 'wx', 0o600);
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch {
    // Held: by a live process, or left by a dead one (then it is stale and removed).
    try {
      const pid = Number(readFileSync(lock, 'utf8'));
      if (pid > 0) process.kill(pid, 0);
      return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH' || (err as NodeJS.ErrnoException).code === 'ENOENT') {
        try {
          unlinkSync(lock);
        } catch {
          // someone else removed it
        }
      }
      return false;
    }
  }
}

async function startRedisServer(dir: string, socket: string, deadline: number): Promise<void> {
  const log = join(dir, 'redis.log');
  const child = spawn(
    'redis-server',
    [
      '--port', '0',
      '--unixsocket', socket,
      '--unixsocketperm', '700',
      '--dir', dir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--save', '',
      '--daemonize', 'no',
      '--pidfile', join(dir, 'redis.pid'),
      '--logfile', log,
    ],
    { detached: true, stdio: 'ignore', cwd: dir },
  );
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? -1;
  });
  child.unref();
  let wait = 5;
  while (Date.now() < deadline) {
    if (await pingSocket(socket)) return;
    if (exited !== null) break;
    await sleep(wait);
    wait = Math.min(wait * 2, 200);
  }
  const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
  throw new RedisUnavailableError(`redis-server ${exited !== null ? `exited (code ${exited})` : 'did not answer'}${tail ? `: ${tail}` : ''}; its log: ${log}`);
}

/**
 * Shuts the embedded redis-server down (it writes its append-only file first), unless other
 * clients still use it. True when it is no longer running.
 */
export async function stopEmbeddedRedis(stateDir: string, force = false): Promise<boolean> {
  const socket = embeddedRedisSocket(stateDir);
  if (!(await pingSocket(socket))) return true;
  const redis = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    if (!force) {
      const clients = String(await redis.client('LIST')).trim().split('\n').length;
      if (clients > 1) return false;
    }
    await redis.call('SHUTDOWN').catch(() => {}); // the connection closes as it answers
  } catch {
    // it went away on its own
  } finally {
    // ioredis's disconnect() of a connection that has already closed waits 2 s for a 'close'
    // that never comes again, and that timer keeps the process alive.
    if (redis.status !== 'end') redis.disconnect();
  }
  for (let i = 0; i < 100 && (await pingSocket(socket)); i++) await sleep(50);
  return !(await pingSocket(socket));
}

import { checkKeys, describeType, expectMap, optDuration, optInt, type Fail } from '../jobfile/fields.js';

// Config `Retention`: how long finished jobs are kept (lib/retention/retention.ts applies it) and
// how large the supervisor's log may grow before it is rotated (lib/util/log-rotation.ts).

export interface RetentionConfig {
  /** A finished job is removed this long after it ended; null: kept whatever its age. */
  maxAgeMs: number | null;
  /** At most this many finished jobs are kept (the newest); null: no limit. */
  maxJobs: number | null;
  /** supervisor.log is rotated when it reaches this many bytes. */
  logSizeBytes: number;
  /** Rotated logs kept beside supervisor.log (supervisor.log.1 … .N, newest first). */
  logFiles: number;
}

const KEYS = ['MaxAge', 'MaxJobs', 'LogSize', 'LogFiles'];
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };
const LOG_SIZE_MIN = 4096;

/** Bytes from `10MB`, `512KB`, `4096`; null when it is not a size. */
export function parseSize(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : null;
  if (typeof value !== 'string') return null;
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
  return match && unit !== undefined ? Math.round(Number(match[1]) * unit) : null;
}

export function compileRetention(raw: unknown, fail: Fail): RetentionConfig {
  const path = ['Retention'];
  const map = expectMap(raw ?? {}, path, fail, 'Retention');
  checkKeys(map, KEYS, path, fail, 'Retention');
  const maxAgeMs = optDuration(map, 'MaxAge', path, fail, 100 * 365 * 86_400_000) ?? null;
  if (maxAgeMs !== null && maxAgeMs < 1000) fail([...path, 'MaxAge'], 'must be at least 1s (or null: keep finished jobs whatever their age)');
  const maxJobs = optInt(map, 'MaxJobs', path, fail, 0, 100_000_000) ?? null;
  let logSizeBytes = 10 * 1024 ** 2;
  if (map.LogSize !== undefined && map.LogSize !== null) {
    const size = parseSize(map.LogSize);
    if (size === null) fail([...path, 'LogSize'], `must be a size such as 10MB, 512KB or a number of bytes, not ${describeType(map.LogSize)}`);
    if (size < LOG_SIZE_MIN) fail([...path, 'LogSize'], `must be at least ${LOG_SIZE_MIN} bytes (4KB)`);
    logSizeBytes = size;
  }
  const logFiles = optInt(map, 'LogFiles', path, fail, 1, 100) ?? 5;
  return { maxAgeMs, maxJobs, logSizeBytes, logFiles };
}

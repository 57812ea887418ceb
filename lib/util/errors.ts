// Every error a user can meet is a JobManagerError: a small class with a stable `code` (for
// scripts and `--json`) and a message that says what to do about it. The errors of one module are
// declared beside it (SSH: lib/ssh/errors.ts; a remote launch: lib/backends/remote/launch.ts);
// those that several folders raise are here.

export class JobManagerError extends Error {
  readonly code: string = 'JM_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
  toJSON(): { code: string; name: string; message: string } {
    return { code: this.code, name: this.name, message: this.message };
  }
}

/** A job file that cannot be queued: names the file, the line and what to change. */
export class JobSpecError extends JobManagerError {
  override readonly code = 'JM_JOB_SPEC';
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly key: string | null,
    readonly reason: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${reason}`);
  }
}

/** A config file or environment override that cannot be used. */
export class ConfigError extends JobManagerError {
  override readonly code = 'JM_CONFIG';
  constructor(
    readonly file: string,
    readonly key: string | null,
    readonly reason: string,
  ) {
    super(`${file}: ${key ? `${key}: ` : ''}${reason}`);
  }
}

/** Redis cannot be reached or started: the message names the URL or the redis-server log. */
export class RedisUnavailableError extends JobManagerError {
  override readonly code = 'JM_REDIS_UNAVAILABLE';
}

/** Another supervisor owns the state directory. */
export class StateDirLockedError extends JobManagerError {
  override readonly code = 'JM_STATE_DIR_LOCKED';
}

/** A move that the lifecycle does not allow (closing twice is fine; starting after close is not). */
export class IllegalStateError extends JobManagerError {
  override readonly code = 'JM_ILLEGAL_STATE';
}

/** The local launcher process cannot take a job (it has exited, or the job cannot be passed to it). */
export class LauncherError extends JobManagerError {
  override readonly code = 'JM_LAUNCHER';
}

/** A program JobManager needs (redis-server) is not installed: the message says how to install it. */
export class MissingProgramError extends JobManagerError {
  override readonly code = 'JM_MISSING_PROGRAM';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Every error a user can meet is one of these: a small class with a stable `code` (for scripts and
// `--json`) and a message that says what to do about it.

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

export class RedisUnavailableError extends JobManagerError {
  override readonly code = 'JM_REDIS_UNAVAILABLE';
}

/** Another supervisor owns the state directory. */
export class StateDirLockedError extends JobManagerError {
  override readonly code = 'JM_STATE_DIR_LOCKED';
}

export class NotRunningError extends JobManagerError {
  override readonly code = 'JM_NOT_RUNNING';
}

export class JobNotFoundError extends JobManagerError {
  override readonly code = 'JM_JOB_NOT_FOUND';
  constructor(readonly jobId: string) {
    super(`no job with id ${jobId}; \`jobmanager jobs\` lists the known ones`);
  }
}

/** A move that the lifecycle does not allow (closing twice is fine; starting after close is not). */
export class IllegalStateError extends JobManagerError {
  override readonly code = 'JM_ILLEGAL_STATE';
}

/** A worker thread died while requests to it were waiting. */
export class ActorExitedError extends JobManagerError {
  override readonly code = 'JM_ACTOR_EXITED';
}

export class LauncherError extends JobManagerError {
  override readonly code = 'JM_LAUNCHER';
}

/** A Lua script refused a transition (its negative return code, named). */
export class TransitionError extends JobManagerError {
  override readonly code = 'JM_TRANSITION';
}

export class TimeoutError extends JobManagerError {
  override readonly code = 'JM_TIMEOUT';
}

export class MissingProgramError extends JobManagerError {
  override readonly code = 'JM_MISSING_PROGRAM';
}

/** Thrown by job code (or raised for a job) to say: failing again will not help, do not retry. */
export class UnrecoverableError extends JobManagerError {
  override readonly code = 'JM_UNRECOVERABLE';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

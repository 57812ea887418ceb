import { JobManagerError } from './errors.js';

// Quoting for POSIX sh. Every value that reaches a shell goes through shq(): single quotes, with
// embedded single quotes closed, escaped and reopened. Nothing else is needed or safe.

/** A value that no shell word can carry. Job files and the config refuse NUL before it gets here. */
export class ShellValueError extends JobManagerError {
  override readonly code = 'JM_SHELL_VALUE';
}

export function shq(value: string): string {
  // The value itself is not quoted in the message: it may be a secret from Env.
  if (value.includes('\0')) throw new ShellValueError('a value holds a NUL character, which no shell argument can carry; remove it where the value is set (an environment variable, a path or a job file)');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A path as one shell word; a leading ~ or ~/ becomes "$HOME" (quoting would keep it literal). */
export function shellPath(path: string): string {
  if (path === '~') return '"$HOME"';
  if (path.startsWith('~/')) return `"$HOME"/${shq(path.slice(2))}`;
  return shq(path);
}

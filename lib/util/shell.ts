// Quoting for POSIX sh. Every value that reaches a shell goes through shq(): single quotes, with
// embedded single quotes closed, escaped and reopened. Nothing else is needed or safe.

export function shq(value: string): string {
  if (value.includes('\0')) throw new Error('a NUL character cannot be passed to a shell');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A path as one shell word; a leading ~ or ~/ becomes "$HOME" (quoting would keep it literal). */
export function shellPath(path: string): string {
  if (path === '~') return '"$HOME"';
  if (path.startsWith('~/')) return `"$HOME"/${shq(path.slice(2))}`;
  return shq(path);
}

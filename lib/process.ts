// Is a process (or, with a negative id, a process group) alive? EPERM means it exists but is
// someone else's.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

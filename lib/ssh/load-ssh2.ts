// ssh2 is loaded by the first SSH connection a thread makes, not when the thread starts: each of
// the supervisor's threads (main, manager, starter, fetcher) is a V8 isolate of its own, and
// ssh2 costs each one ~6 MB of resident memory (its code, and the WebAssembly memory of its
// poly1305) whether it ever connects or not, which a deployment without SSH hosts never does.

export type Ssh2 = typeof import('ssh2');

let loading: Promise<Ssh2> | null = null;

export function loadSsh2(): Promise<Ssh2> {
  loading ??= import('ssh2').then((module) => module.default);
  return loading;
}
